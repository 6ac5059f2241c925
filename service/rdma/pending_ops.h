// The RDMA operations ringd's rdma transport has in flight, by work-request id.
//
// An operation is posted on one QP (a client connection's or a peer link's) and awaited by one
// coroutine, which may belong to another connection: a REMOTE op against a local grant runs on
// the grant owner's QP. Whichever CQ poll sees the completion fires the waiter's Event here.
// Three other ends exist, and each fires the Event with an error:
//   - the QP's owner closes (FailAllOn): every op posted on it;
//   - the op's deadline passes (Expire): the caller then aborts the QP's owner, because the work
//     request is still posted and the device could still move its data (into a bounce buffer
//     another op reuses) until the QP is destroyed;
//   - the transport stops.
// A completion whose id is no longer here (its op expired) is ignored.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "wire/rdma_wire.h"
#include "service/rdma/task.h"

namespace pinring::ringd {

// The owner of a QP on which operations are posted (a connection, a peer link).
class QpOwner {
 public:
  virtual ~QpOwner() = default;
  // The QP must go now: an operation on it outlived its deadline. Destroys the QP (no more
  // device access to any buffer it named) and fails what waits on it.
  virtual void Abort(absl::Status why) = 0;
};

class PendingOps {
 public:
  explicit PendingOps(rdma_async::ReadyQueue& ready) : ready_(ready) {}

  // A fresh work-request id for a one-sided op: neither kRecvTag nor kSendTag is set.
  std::uint64_t NextId() { return kOpTag | (next_++ & (kOpTag - 1)); }
  static bool IsOpId(std::uint64_t wr_id) {
    return (wr_id & (rdma::kRecvTag | rdma::kSendTag)) == 0 && (wr_id & kOpTag) != 0;
  }

  // `event` (in the waiter's frame) is fired exactly once, by one of the ends above.
  void Add(std::uint64_t wr_id, rdma_async::Event* event, QpOwner* qp, absl::Time deadline);
  // A completion polled from `qp`'s CQ. False when the id is not pending.
  bool Complete(std::uint64_t wr_id, absl::Status status);
  // `qp` is gone: fails its ops.
  void FailAllOn(const QpOwner* qp, const absl::Status& why);
  // Fails every op past its deadline; returns their QPs' owners, each once, to be aborted.
  std::vector<QpOwner*> Expire(absl::Time now);
  // Everything (the transport stops).
  void FailAll(const absl::Status& why);
  std::size_t size() const { return ops_.size(); }

 private:
  static constexpr std::uint64_t kOpTag = 1ull << 60;
  struct Op {
    rdma_async::Event* event;
    QpOwner* qp;
    absl::Time deadline;
  };
  rdma_async::ReadyQueue& ready_;
  std::uint64_t next_ = 0;
  absl::flat_hash_map<std::uint64_t, Op> ops_;
};

}  // namespace pinring::ringd
