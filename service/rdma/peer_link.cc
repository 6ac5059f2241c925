#include "service/rdma/peer_link.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pinring/status.h"

namespace pinring::ringd {

using rdma::ControlMessage;
using rdma::ControlType;
using rdma::kRecvTag;
using rdma::kSlotBytes;

namespace {

std::string NodeText(std::uint64_t node) {
  in_addr a{};
  a.s_addr = htonl(rdma::NodeAddr(node));
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, text, sizeof text);
  return text;
}

}  // namespace

PeerLink::~PeerLink() {
  if (ch_ != nullptr) {
    ch_->Disconnect();
    ch_->DestroyQp();  // QP and CQ before the MRs and the PD
  }
  (void)in_mr_.Deregister();
  out_.reset();
  slots_.reset();
  dev_.reset();
  ch_.reset();
}

absl::Status PeerLink::Connect(const std::string& host, std::uint16_t port) {
  const absl::Duration timeout = ctx_.opts.op_timeout;  // options are constant after Start
  PINRING_ASSIGN_OR_RETURN(ch_, rdma::RdmaChannel::Resolve(host, port, timeout));
  PINRING_ASSIGN_OR_RETURN(dev_, VerbsDevice::Adopt(ch_->verbs(), ch_->port_num()));
  rdma::RdmaChannel::QpOptions qo;
  qo.send_depth = 8;
  qo.recv_depth = kRecv;
  PINRING_RETURN_IF_ERROR(ch_->CreateQp(*dev_, qo));  // its own completion channel
  PrivateRegion::Options local;
  local.mode = ForkMode::kDontFork;  // ringd never forks a child that needs this memory
  local.device_writes = true;
  local.local_only = true;
  PINRING_ASSIGN_OR_RETURN(slots_, PrivateRegion::Create(*dev_, (kRecv + 1) * kSlotBytes, local));
  PrivateRegion::Options readable;
  readable.mode = ForkMode::kReadOnly;  // REMOTE_READ and nothing else
  PINRING_ASSIGN_OR_RETURN(out_, PrivateRegion::Create(*dev_, rdma::kPeerChunkBytes, readable));
  PINRING_ASSIGN_OR_RETURN(in_mem_, MapForkModeMemory(rdma::kPeerChunkBytes, ForkMode::kKernel));
  for (std::uint32_t i = 0; i < kRecv; ++i) {
    PINRING_RETURN_IF_ERROR(
        ch_->PostRecv(slots_->mr(), std::uint64_t{i} * kSlotBytes, kSlotBytes, kRecvTag | i));
  }
  PINRING_RETURN_IF_ERROR(ch_->ArmCq());
  rdma::ConnectRequest req{};
  req.magic = rdma::kRdmaMagic;
  req.version = rdma::kRdmaVersion;
  req.flags = rdma::kConnectFlagPeer;
  req.recv_depth = kRecv;
  std::string reply;
  return ch_->Connect(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(&req), sizeof req),
                      timeout, &reply);
}

int PeerLink::comp_fd() const { return ch_ != nullptr ? ch_->comp_fd() : -1; }

void PeerLink::Arm() {
  if (!broken_) (void)ch_->ArmCq();
}

void PeerLink::Abort(absl::Status why) {
  if (broken_) return;
  broken_ = true;
  error_ = why;
  ch_->Disconnect();
  ch_->DestroyQp();  // no device access to `in` or `out` after this
  ctx_.ops.FailAllOn(this, why);
  for (rdma_async::Event* e : std::exchange(turn_, {})) e->Fire(why);
}

void PeerLink::Poll() {
  if (broken_) return;
  (void)ch_->WaitCqEvent(absl::ZeroDuration());  // acks and re-arms when an event is pending
  ibv_wc wc[8];
  for (;;) {
    auto n = ch_->Poll(absl::MakeSpan(wc));
    if (!n.ok()) return Abort(n.status());
    for (int i = 0; i < *n; ++i) {
      if (wc[i].status != IBV_WC_SUCCESS) {
        return Abort(absl::UnavailableError(absl::StrCat("peer link work completion failed: ",
                                                         ibv_wc_status_str(wc[i].status))));
      }
      if ((wc[i].wr_id & kRecvTag) == 0) continue;  // our SEND completed
      // The slot comes from our own PostRecv's wr_id: < kRecv.
      const auto slot = static_cast<std::uint32_t>(wc[i].wr_id & 0xffff);
      // Untrusted: the peer ringd. A message only when IsWellFormed says so.
      ControlMessage m{};
      std::memcpy(&m, slots() + std::uint64_t{slot} * kSlotBytes,
                  std::min<std::size_t>(wc[i].byte_len, sizeof m));
      if (absl::Status s =
              ch_->PostRecv(slots_->mr(), std::uint64_t{slot} * kSlotBytes, kSlotBytes,
                            kRecvTag | slot);
          !s.ok()) {
        return Abort(s);
      }
      if (!rdma::IsWellFormed(m, wc[i].byte_len) ||
          m.type != static_cast<std::uint16_t>(ControlType::kPeerOpReply)) {
        return Abort(absl::DataLossError("peer ringd sent a malformed reply"));
      }
      // Untrusted seq: only the reply of the Request in flight counts; a stale one is dropped.
      if (busy_ && m.seq == want_seq_) {
        reply_ = m;
        ctx_.ops.Complete(reply_id_, absl::OkStatus());
      }
    }
    if (*n < 8) break;
  }
  if (ch_->PollDisconnected()) Abort(absl::UnavailableError("peer ringd disconnected"));
}

rdma_async::Task<absl::StatusOr<CompletionStatus>> PeerLink::Request(
    std::uint32_t direction, std::uint32_t handle, std::uint64_t key, std::uint64_t offset,
    std::byte* data, std::uint32_t len) {
  // One PeerOp in flight per link: wait for our turn.
  while (busy_ && !broken_) {
    rdma_async::Event turn(ctx_.ready);
    turn_.push_back(&turn);
    // After an error the link may be gone: touch nothing of it.
    if (absl::Status s = co_await turn; !s.ok()) co_return s;
  }
  if (broken_) co_return error_;
  busy_ = true;
  absl::Cleanup next_turn = [this] {
    busy_ = false;
    if (!turn_.empty()) {
      rdma_async::Event* e = turn_.front();
      turn_.erase(turn_.begin());
      e->Fire(absl::OkStatus());
    }
  };
  const bool write = direction == rdma::kPeerWrite;
  rdma::PeerOp op{};
  op.magic = rdma::kRdmaMagic;
  op.type = static_cast<std::uint16_t>(ControlType::kPeerOp);
  op.seq = want_seq_ = seq_++;
  op.key = key;
  op.offset = offset;
  op.length = len;
  op.handle = handle;
  op.direction = direction;
  if (write) {
    std::memcpy(out_->data(), data, len);
    op.buf_addr = reinterpret_cast<std::uint64_t>(out_->data());
    op.buf_rkey = out_->mr().rkey();
  } else {
    // The peer may write here for this op only: the MR goes when the op ends.
    auto mr = dev_->Register(in_mem_.data(), rdma::kPeerChunkBytes,
                             IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    if (!mr.ok()) {
      Abort(mr.status());
      co_return mr.status();
    }
    in_mr_ = std::move(*mr);
    op.buf_addr = reinterpret_cast<std::uint64_t>(in_mem_.data());
    op.buf_rkey = in_mr_.rkey();
  }
  // Deregistered after the reply (the peer's WRITE precedes its reply SEND on the RC QP) or
  // after Abort destroyed the QP.
  absl::Cleanup close_in = [this] { (void)in_mr_.Deregister(); };
  std::memcpy(slots() + std::uint64_t{kRecv} * kSlotBytes, &op, sizeof op);
  reply_id_ = ctx_.ops.NextId();
  if (absl::Status s = ch_->PostSend(slots_->mr(), std::uint64_t{kRecv} * kSlotBytes, sizeof op,
                                     rdma::kSendTag, true);
      !s.ok()) {
    Abort(s);
    co_return s;
  }
  rdma_async::Event replied(ctx_.ready);
  ctx_.ops.Add(reply_id_, &replied, this, absl::Now() + ctx_.opts.op_timeout);
  if (absl::Status s = co_await replied; !s.ok()) {
    // Expired: PendingOps::Expire aborts the link. Closed: it is aborted already.
    Abort(s);
    if (absl::IsDeadlineExceeded(s)) co_return absl::DeadlineExceededError("peer ringd: no reply");
    co_return s;
  }
  const ControlMessage m = reply_;
  // Untrusted status: only the ones a grant check or the transfer can produce.
  const auto st = static_cast<CompletionStatus>(m.code);
  if (st == CompletionStatus::kOk && m.value != len) {
    Abort(absl::DataLossError("peer ringd reported a short transfer"));
    co_return error_;
  }
  if (st != CompletionStatus::kOk && st != CompletionStatus::kUnknownRegion &&
      st != CompletionStatus::kOutOfBounds && st != CompletionStatus::kReadOnlyRegion &&
      st != CompletionStatus::kDeviceError && st != CompletionStatus::kShuttingDown) {
    Abort(absl::DataLossError(absl::StrCat("peer ringd sent status ", m.code)));
    co_return error_;
  }
  if (!write && st == CompletionStatus::kOk) std::memcpy(data, in_mem_.data(), len);
  co_return st;
}

// --- PeerPool --------------------------------------------------------------------------------
PeerPool::~PeerPool() {
  Shutdown();
  Clear();
}

void PeerPool::Shutdown() {
  for (auto& [node, c] : connecting_) {
    if (c->thread.joinable()) c->thread.join();
  }
  Poll();  // adopts what finished and fires the connect waiters
  for (auto& [node, l] : links_) l->Abort(absl::UnavailableError("ringd is stopping"));
}

void PeerPool::Clear() {
  connecting_.clear();
  retired_.clear();
  links_.clear();
}

rdma_async::Task<absl::StatusOr<PeerLink*>> PeerPool::Get(std::uint64_t node) {
  if (auto it = links_.find(node); it != links_.end()) {
    if (!it->second->broken()) co_return it->second.get();
    // A link the peer closed (its ringd restarted or stopped) is replaced right away.
    ctx_.Log(absl::StrCat("peer link to node 0x", absl::Hex(node), " was closed; reconnecting"));
    Drop(it->second.get());
  }
  const std::string host = NodeText(node);
  const std::uint16_t port = rdma::NodePort(node);
  auto ci = connecting_.find(node);
  if (ci == connecting_.end()) {
    auto c = std::make_unique<Connecting>();
    c->link = std::make_unique<PeerLink>(ctx_, node);
    Connecting* raw = c.get();
    const int wake = wake_fd_;
    // rdma_cm's resolve and connect block (up to op_timeout each): on a thread of their own.
    c->thread = std::thread([raw, host, port, wake] {
      absl::Status s = raw->link->Connect(host, port);
      {
        absl::MutexLock l(&raw->mu);
        raw->finished = true;
        raw->status = std::move(s);
      }
      const std::uint64_t one = 1;
      (void)!write(wake, &one, sizeof one);  // wakes the loop, which adopts the link
    });
    ci = connecting_.emplace(node, std::move(c)).first;
  }
  rdma_async::Event ready(ctx_.ready);
  ci->second->waiters.push_back(&ready);
  if (absl::Status s = co_await ready; !s.ok()) {
    co_return absl::Status(s.code(),
                           absl::StrCat("ringd peer ", host, ":", port, ": ", s.message()));
  }
  auto it = links_.find(node);
  if (it == links_.end() || it->second->broken()) {
    co_return absl::UnavailableError(absl::StrCat("ringd peer ", host, ":", port, ": link lost"));
  }
  co_return it->second.get();
}

void PeerPool::Drop(PeerLink* link) {
  auto it = links_.find(link->node());
  if (it == links_.end() || it->second.get() != link) return;
  if (!link->broken()) link->Abort(absl::CancelledError("link dropped"));
  retired_.push_back(std::move(it->second));  // destroyed by Poll once no Request runs on it
  links_.erase(it);
}

void PeerPool::Poll() {
  for (auto it = connecting_.begin(); it != connecting_.end();) {
    Connecting& c = *it->second;
    absl::Status st;
    {
      absl::MutexLock l(&c.mu);
      if (!c.finished) {
        ++it;
        continue;
      }
      st = c.status;
    }
    c.thread.join();
    const std::uint64_t node = it->first;
    const std::string where = absl::StrCat(NodeText(node), ":", rdma::NodePort(node));
    if (st.ok()) {
      ctx_.Log(absl::StrCat("peer link to ", where, " up"));
      links_[node] = std::move(c.link);
    } else {
      ctx_.Log(absl::StrCat("peer link to ", where, " failed: ", st.ToString()));
    }
    for (rdma_async::Event* e : c.waiters) e->Fire(st);
    it = connecting_.erase(it);
  }
  for (auto& [node, l] : links_) l->Poll();
  std::erase_if(retired_, [](const auto& l) { return l->idle(); });
}

void PeerPool::AppendPollFds(std::vector<int>* fds) const {
  for (const auto& [node, l] : links_) {
    if (!l->broken() && l->comp_fd() >= 0) fds->push_back(l->comp_fd());
  }
}

void PeerPool::Arm() {
  for (auto& [node, l] : links_) l->Arm();
}

}  // namespace pinring::ringd
