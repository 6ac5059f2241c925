#include "service/rdma/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <rdma/rdma_cma.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pinring/status.h"
#include "service/rdma/remote_memory.h"

namespace pinring::ringd {

using rdma::ControlMessage;
using rdma::ControlType;
using rdma::kRecvTag;
using rdma::kSendTag;
using rdma::kRequestSlotBytes;
using rdma::kSlotBytes;

Connection::Connection(TransportContext& ctx, RemoteMemory& remote, std::uint32_t id, bool peer,
                       Device* device, std::unique_ptr<rdma::RdmaChannel> ch,
                       const rdma::ConnectRequest& req)
    : ctx_(ctx),
      remote_(remote),
      id_(id),
      peer_(peer),
      device_(device),
      ch_(std::move(ch)),
      req_(req),
      sq_mask_(req.sq_entries - 1),
      cq_mask_(req.cq_entries - 1),
      accepted_at_(absl::Now()) {}

Connection::~Connection() {
  if (ch_ != nullptr && ch_->id() != nullptr) ch_->id()->context = nullptr;
  if (ch_ != nullptr) {
    ch_->Disconnect();
    ch_->DestroyQp();  // QP + CQ before the staging MR and the PD
  }
  mem_.reset();
  ch_.reset();  // rdma_destroy_id
}

absl::Status Connection::SetUp(const rdma::ConnectReply& rep) {
  VerbsDevice& dev = *device_->dev;
  rdma::RdmaChannel::QpOptions qo;
  qo.send_depth = kSendDepth;
  qo.recv_depth = kRecvDepth;
  qo.comp_channel = device_->comp;
  qo.cq_context = this;
  PINRING_RETURN_IF_ERROR(ch_->CreateQp(dev, qo));
  send_off_ = std::uint64_t{kRecvDepth} * kRequestSlotBytes;
  sq_off_ = RoundUp(send_off_ + std::uint64_t{rdma::kSendSlots} * kSlotBytes, kPageSize);
  cq_off_ = sq_off_ + rdma::SqBytes(req_.sq_entries);
  bounce_off_ = cq_off_ + rdma::CqBytes(req_.cq_entries);
  PrivateRegion::Options po;
  po.mode = ForkMode::kDontFork;  // ringd never forks a child that needs this memory
  po.device_writes = true;        // receives, RDMA READ targets
  po.local_only = true;           // ringd initiates every operation: no rkey is given out
  PINRING_ASSIGN_OR_RETURN(mem_, PrivateRegion::Create(dev, bounce_off_ + kBounceBytes, po));
  send_busy_.assign(rdma::kSendSlots, false);
  for (std::uint32_t i = 0; i < kRecvDepth; ++i) {
    PINRING_RETURN_IF_ERROR(
        ch_->PostRecv(mem_->mr(), std::uint64_t{i} * kRequestSlotBytes, kRequestSlotBytes,
                      kRecvTag | i));
  }
  PINRING_RETURN_IF_ERROR(
      ch_->Accept(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(&rep), sizeof rep)));
  ch_->id()->context = this;
  return absl::OkStatus();
}

void Connection::Reject(const rdma::ConnectReply& rep) {
  (void)ch_->Reject(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(&rep), sizeof rep));
  dead_ = true;
}

std::uint32_t Connection::local_ipv4() const {
  sockaddr* local = rdma_get_local_addr(ch_->id());
  if (local == nullptr || local->sa_family != AF_INET) return 0;
  return ntohl(reinterpret_cast<sockaddr_in*>(local)->sin_addr.s_addr);
}

std::string Connection::remote_address() const {
  sockaddr* peer = rdma_get_peer_addr(ch_->id());
  if (peer == nullptr || peer->sa_family != AF_INET) return "";
  const auto* sin = reinterpret_cast<sockaddr_in*>(peer);
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
  return absl::StrCat(text, ":", ntohs(sin->sin_port));
}

const GrantedRegion* Connection::Lookup(std::uint32_t handle) {
  auto it = regions_.find(handle);
  return it == regions_.end() ? nullptr : &it->second;
}

// --- completions --------------------------------------------------------------------------------
void Connection::Break(absl::Status why) {
  qp_broken_ = true;
  if (error_.ok()) error_ = std::move(why);
}

void Connection::Poll() {
  if (qp_destroyed_) return;
  ibv_wc wc[16];
  for (;;) {
    auto polled = ch_->Poll(absl::MakeSpan(wc));
    if (!polled.ok()) return Break(polled.status());
    for (int i = 0; i < *polled; ++i) {
      const ibv_wc& w = wc[i];
      if (PendingOps::IsOpId(w.wr_id)) {
        // A one-sided op: ours or another connection's (ForeignOp), or an unsignaled completion
        // WRITE that failed. Its waiter learns the status; the QP is broken either way.
        const absl::Status st =
            w.status == IBV_WC_SUCCESS
                ? absl::OkStatus()
                : absl::UnavailableError(absl::StrCat("work completion failed: ",
                                                      ibv_wc_status_str(w.status)));
        (void)ctx_.ops.Complete(w.wr_id, st);
        if (!st.ok()) Break(st);
        continue;
      }
      if (w.status != IBV_WC_SUCCESS) {
        Break(absl::UnavailableError(
            absl::StrCat("work completion failed: ", ibv_wc_status_str(w.status))));
        continue;
      }
      if (w.wr_id & kSendTag) {
        send_busy_[w.wr_id & 0xffff] = false;  // the slot index comes from our own PostSend
        if (slot_waiter_ != nullptr) std::exchange(slot_waiter_, nullptr)->Fire(absl::OkStatus());
      } else if (w.wr_id & kRecvTag) {
        // The slot index comes from our own PostRecv (< kRecvDepth); the rest is the client's.
        inbox_.push_back(Arrived{static_cast<std::uint32_t>(w.wr_id & 0xffffffff), w.byte_len,
                                 w.opcode == IBV_WC_RECV});
      }
    }
    if (*polled < 16) break;
  }
  // A broken QP flushes everything posted on it; ops that did not complete yet fail now.
  if (qp_broken_) Abort(error_);
}

absl::Status Connection::TakeMessage(const Arrived& a, Received* r) {
  const std::byte* buf = base() + std::uint64_t{a.slot} * kRequestSlotBytes;
  r->m = ControlMessage{};
  r->len = a.len;
  r->is_send = a.is_send;
  // Untrusted: byte_len is at most the slot (the device truncates nothing: a longer SEND fails
  // the QP), but copy no more than one message's worth and what follows it as inline
  // descriptors; IsWellFormed checks the received length against the type.
  const std::size_t len = a.is_send ? std::min<std::size_t>(a.len, kRequestSlotBytes) : 0;
  std::memcpy(&r->m, buf, std::min(len, sizeof r->m));
  if (len > sizeof r->m) {
    std::memcpy(r->inline_descs, buf + sizeof r->m,
                std::min(len - sizeof r->m, sizeof r->inline_descs));
  }
  absl::Status s = ch_->PostRecv(mem_->mr(), std::uint64_t{a.slot} * kRequestSlotBytes,
                                 kRequestSlotBytes, kRecvTag | a.slot);
  if (!s.ok()) Break(s);
  return s;
}

// --- operations -------------------------------------------------------------------------------
rdma_async::Task<absl::Status> Connection::RunOp(ibv_wr_opcode op, const MemoryRegion& local,
                                                 std::uint64_t local_off, std::uint32_t len,
                                                 std::uint64_t remote_addr, std::uint32_t rkey) {
  if (qp_broken_ || qp_destroyed_ || failing_) {
    co_return error_.ok() ? absl::UnavailableError("connection closing") : error_;
  }
  const std::uint64_t wr_id = ctx_.ops.NextId();
  absl::Status st = op == IBV_WR_RDMA_READ
                        ? ch_->PostRead(local, local_off, len, remote_addr, rkey, wr_id, true)
                        : ch_->PostWrite(local, local_off, len, remote_addr, rkey, wr_id, true);
  if (!st.ok()) {
    Break(st);
    co_return st;
  }
  rdma_async::Event done(ctx_.ready);
  ctx_.ops.Add(wr_id, &done, this, absl::Now() + ctx_.opts.op_timeout);
  st = co_await done;
  if (!st.ok() && !absl::IsDeadlineExceeded(st)) {
    // A failed RDMA op against the client: its rkey was revoked, its MR deregistered, or the
    // range lied about. The QP is in ERROR now.
    st = absl::FailedPreconditionError(absl::StrCat(
        op == IBV_WR_RDMA_READ ? "RDMA READ" : "RDMA WRITE", " of ", len, " bytes at 0x",
        absl::Hex(remote_addr), " rkey 0x", absl::Hex(rkey), " failed: ", st.message()));
  }
  co_return st;
}

rdma_async::Task<absl::Status> Connection::Read(std::uint64_t remote_addr, std::uint32_t rkey,
                                                std::uint32_t len) {
  absl::Status s = co_await RunOp(IBV_WR_RDMA_READ, mem_->mr(), bounce_off_, len, remote_addr, rkey);
  if (!s.ok() && error_.ok()) error_ = s;
  co_return s;
}

rdma_async::Task<absl::Status> Connection::Write(std::uint64_t remote_addr, std::uint32_t rkey,
                                                 std::uint32_t len) {
  absl::Status s = co_await RunOp(IBV_WR_RDMA_WRITE, mem_->mr(), bounce_off_, len, remote_addr, rkey);
  if (!s.ok() && error_.ok()) error_ = s;
  co_return s;
}

rdma_async::Task<absl::Status> Connection::ForeignOp(ibv_wr_opcode op, const MemoryRegion& local,
                                                     std::uint64_t local_off, std::uint32_t len,
                                                     std::uint64_t remote_addr,
                                                     std::uint32_t rkey) {
  // Bounded share of this QP's send queue (kSendDepth counts kForeignOps of them).
  while (foreign_ops_ >= kForeignOps && usable()) {
    rdma_async::Event turn(ctx_.ready);
    foreign_waiters_.push_back(&turn);
    if (absl::Status s = co_await turn; !s.ok()) co_return s;
  }
  if (!usable()) co_return absl::UnavailableError("the grant's owner connection failed");
  ++foreign_ops_;
  absl::Status s = co_await RunOp(op, local, local_off, len, remote_addr, rkey);
  --foreign_ops_;
  if (!s.ok() && error_.ok()) error_ = s;  // the owner's QP failed: the owner is failed
  if (!foreign_waiters_.empty()) {
    rdma_async::Event* next = foreign_waiters_.front();
    foreign_waiters_.erase(foreign_waiters_.begin());
    next->Fire(absl::OkStatus());
  }
  co_return s;
}

rdma_async::Task<CompletionStatus> Connection::Remote(Descriptor d, std::uint64_t* result) {
  co_return co_await remote_.Remote(*this, d, result);
}

int Connection::FreeSendSlot() const {
  for (std::uint32_t i = 0; i < rdma::kSendSlots; ++i) {
    if (!send_busy_[i]) return static_cast<int>(i);
  }
  return -1;
}

bool Connection::TrySend(const ControlMessage& m) {
  if (qp_broken_ || qp_destroyed_) return false;
  if (const int slot = FreeSendSlot(); slot >= 0) {
    const auto i = static_cast<std::uint32_t>(slot);
    const std::uint64_t off = send_off_ + std::uint64_t{i} * kSlotBytes;
    std::memcpy(base() + off, &m, sizeof m);
    if (absl::Status s = ch_->PostSend(mem_->mr(), off, sizeof m, kSendTag | i, true); !s.ok()) {
      Break(s);
      return false;
    }
    send_busy_[i] = true;
    return true;
  }
  return false;
}

rdma_async::Task<absl::Status> Connection::Send(ControlMessage m) {
  const absl::Time deadline = absl::Now() + ctx_.opts.op_timeout;
  for (;;) {
    if (qp_broken_ || qp_destroyed_ || failing_) {
      co_return error_.ok() ? absl::UnavailableError("connection closing") : error_;
    }
    if (TrySend(m)) co_return absl::OkStatus();
    if (qp_broken_) co_return error_;
    // Every slot busy: the client has not acknowledged our SENDs. Wait for one (this connection
    // only); Tick() ends the wait at the deadline.
    rdma_async::Event freed(ctx_.ready);
    slot_waiter_ = &freed;
    slot_deadline_ = deadline;
    if (absl::Status s = co_await freed; !s.ok()) co_return s;
  }
}

// --- lifecycle ------------------------------------------------------------------------------------
bool Connection::StartWork() {
  if (!task_.done() || dead_ || failing_ || qp_broken_) return false;
  if (task_.valid()) Reap();
  if (dead_ || failing_) return false;
  if (inbox_.empty() && head_ == tail_) return false;
  task_ = Serve();
  task_.Start();
  return true;
}

void Connection::Reap() {
  if (!task_.valid() || !task_.done()) return;
  absl::Status st = std::move(task_.result());
  task_ = {};
  if (!st.ok()) Fail(st);
}

void Connection::Fail(absl::Status why) {
  if (dead_ || failing_) return;
  ctx_.Log(absl::StrCat("connection ", id_, " failed: ", why.ToString()));
  if (error_.ok()) error_ = why;
  ctx_.Count([](RdmaListenerStats& s) { ++s.failed; });
  close_deadline_ = absl::Now() + absl::Milliseconds(500);
  // Tell the client why, best effort, before the disconnect flushes everything. (A client that
  // never finished its handshake cannot be told anything.)
  bool sent = false;
  if (!qp_broken_ && !qp_destroyed_ && established_) {
    ControlMessage m{};
    m.magic = rdma::kRdmaMagic;
    m.type = static_cast<std::uint16_t>(ControlType::kError);
    m.code = static_cast<std::int32_t>(why.code());
    std::snprintf(m.text, sizeof m.text, "%s", std::string(why.message()).c_str());
    sent = TrySend(m);
  }
  failing_ = true;  // from here on nothing new is posted
  if (!sent) FinishClose();
}

void Connection::FinishClose() {
  if (dead_) return;
  failing_ = false;
  dead_ = true;
  if (!qp_destroyed_) {
    ch_->Disconnect();
    // The QP goes now: no device access to the staging memory after this, and every op posted
    // on it (ours, or another connection's ForeignOp) fails.
    ch_->DestroyQp();
    qp_destroyed_ = true;
  }
  const absl::Status why = error_.ok() ? absl::UnavailableError("connection closed") : error_;
  ctx_.ops.FailAllOn(this, why);
  if (slot_waiter_ != nullptr) std::exchange(slot_waiter_, nullptr)->Fire(why);
  for (rdma_async::Event* e : std::exchange(foreign_waiters_, {})) e->Fire(why);
}

void Connection::Abort(absl::Status why) {
  if (dead_) return;
  if (error_.ok()) error_ = why;
  qp_broken_ = true;
  if (!failing_) {
    ctx_.Log(absl::StrCat("connection ", id_, " failed: ", error_.ToString()));
    ctx_.Count([](RdmaListenerStats& s) { ++s.failed; });
  }
  FinishClose();
}

void Connection::OnDisconnected() {
  if (dead_) return;
  if (error_.ok() && !failing_) ctx_.Count([](RdmaListenerStats& s) { ++s.closed; });
  if (error_.ok()) error_ = absl::UnavailableError("the client disconnected");
  failing_ = false;
  FinishClose();
}

void Connection::Tick(absl::Time now) {
  if (dead_) return;
  if (failing_) {
    // The kError SEND completed (its slot is free again) or it had its 500 ms.
    Poll();
    const bool busy = std::any_of(send_busy_.begin(), send_busy_.end(), [](bool b) { return b; });
    if (!busy || qp_broken_ || now > close_deadline_) FinishClose();
    return;
  }
  // A REQ whose sender never sent the RTU: a half-open connection holds a QP and staging.
  if (!established_ && now - accepted_at_ > ctx_.opts.handshake_timeout) {
    Fail(absl::DeadlineExceededError(
        absl::StrCat("the client did not finish the rdma_cm handshake (no RTU) within ",
                     absl::FormatDuration(ctx_.opts.handshake_timeout))));
    return;
  }
  if (slot_waiter_ != nullptr && now > slot_deadline_) {
    Abort(absl::DeadlineExceededError("client stopped receiving (no send slot)"));
    return;
  }
  if (task_.valid() && task_.done()) Reap();
}

}  // namespace pinring::ringd
