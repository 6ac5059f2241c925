#include "service/rdma/pending_ops.h"

#include <algorithm>

namespace pinring::ringd {

void PendingOps::Add(std::uint64_t wr_id, rdma_async::Event* event, QpOwner* qp,
                     absl::Time deadline) {
  ops_[wr_id] = Op{event, qp, deadline};
}

bool PendingOps::Complete(std::uint64_t wr_id, absl::Status status) {
  auto it = ops_.find(wr_id);
  if (it == ops_.end()) return false;
  rdma_async::Event* e = it->second.event;
  ops_.erase(it);  // before Fire: nothing may find it again
  e->Fire(std::move(status));
  return true;
}

void PendingOps::FailAllOn(const QpOwner* qp, const absl::Status& why) {
  std::vector<rdma_async::Event*> fired;
  for (auto it = ops_.begin(); it != ops_.end();) {
    if (it->second.qp == qp) {
      fired.push_back(it->second.event);
      ops_.erase(it++);
    } else {
      ++it;
    }
  }
  for (rdma_async::Event* e : fired) e->Fire(why);
}

std::vector<QpOwner*> PendingOps::Expire(absl::Time now) {
  std::vector<QpOwner*> owners;
  std::vector<rdma_async::Event*> fired;
  for (auto it = ops_.begin(); it != ops_.end();) {
    if (now > it->second.deadline) {
      if (std::find(owners.begin(), owners.end(), it->second.qp) == owners.end()) {
        owners.push_back(it->second.qp);
      }
      fired.push_back(it->second.event);
      ops_.erase(it++);
    } else {
      ++it;
    }
  }
  for (rdma_async::Event* e : fired) e->Fire(absl::DeadlineExceededError("RDMA op timed out"));
  return owners;
}

void PendingOps::FailAll(const absl::Status& why) {
  auto ops = std::move(ops_);
  ops_.clear();
  for (auto& [id, op] : ops) op.event->Fire(why);
}

}  // namespace pinring::ringd
