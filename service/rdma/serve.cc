// A connection's root task: its control messages (rdma_wire.h), then the descriptors its
// doorbells announced. Everything a client sends is untrusted; every violation ends this
// connection only (the task's error goes to Connection::Fail).
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "service/rdma/connection.h"
#include "service/rdma/remote_memory.h"

namespace pinring::ringd {

using rdma::ControlMessage;
using rdma::ControlType;

rdma_async::Task<absl::Status> Connection::Serve() {
  while (!inbox_.empty() || head_ != tail_) {
    auto msgs = std::move(inbox_);
    inbox_.clear();
    for (auto& [m, len] : msgs) {
      if (absl::Status s = co_await HandleMessage(m, len); !s.ok()) co_return s;
    }
    if (absl::Status s = co_await Execute(); !s.ok()) co_return s;
  }
  co_return absl::OkStatus();
}

rdma_async::Task<absl::Status> Connection::HandleMessage(ControlMessage m, std::uint32_t len) {
  // Untrusted: the size, magic and type decide whether this is a message at all.
  if (!rdma::IsWellFormed(m, len)) {
    co_return absl::InvalidArgumentError(absl::StrCat("garbage message (", len, " bytes)"));
  }
  // A peer ringd may only forward REMOTE ops; a client may not.
  if (peer_ != (m.type == static_cast<std::uint16_t>(ControlType::kPeerOp))) {
    co_return absl::InvalidArgumentError(absl::StrCat(
        "message type ", m.type, " not allowed on a ", peer_ ? "peer" : "client", " connection"));
  }
  ControlMessage reply{};
  reply.magic = rdma::kRdmaMagic;
  reply.seq = m.seq;
  GrantTable& grants = remote_.grants();
  switch (static_cast<ControlType>(m.type)) {
    case ControlType::kPeerOp: {
      rdma::PeerOp op;
      std::memcpy(&op, &m, sizeof op);
      auto st = co_await remote_.ServePeerOp(*this, op);
      if (!st.ok()) co_return st.status();
      reply.type = static_cast<std::uint16_t>(ControlType::kPeerOpReply);
      reply.code = static_cast<std::int32_t>(*st);
      reply.value = *st == CompletionStatus::kOk ? op.length : 0;
      co_return co_await Send(reply);
    }
    case ControlType::kExportRegion: {
      reply.type = static_cast<std::uint16_t>(ControlType::kExportRegionReply);
      // Untrusted handle: it must name one of this connection's own regions.
      absl::StatusCode code = absl::StatusCode::kOk;
      if (regions_.count(m.handle) == 0) {
        code = absl::StatusCode::kNotFound;
      } else if (auto g = grants.Export(id_, m.handle)) {
        reply.handle = g->grant;
        reply.value = g->key;
        reply.addr = rdma::NodeId(local_ipv4(), ctx_.port);
      } else {
        code = absl::StatusCode::kResourceExhausted;
      }
      reply.code = static_cast<std::int32_t>(code);
      co_return co_await Send(reply);
    }
    case ControlType::kRevokeGrant: {
      reply.type = static_cast<std::uint16_t>(ControlType::kRevokeGrantReply);
      // Untrusted handle: only the owner of a grant may revoke it.
      reply.code = grants.Revoke(id_, m.handle)
                       ? 0
                       : static_cast<std::int32_t>(absl::StatusCode::kNotFound);
      co_return co_await Send(reply);
    }
    case ControlType::kDoorbell: {
      const auto tail = static_cast<std::uint32_t>(m.value);
      // Untrusted tail: it may be anything. Between our own head and head + sq_entries it names
      // descriptors the client wrote; beyond that the client broke the protocol (or lies).
      if (tail - head_ > req_.sq_entries) {
        co_return absl::OutOfRangeError(absl::StrCat("doorbell tail ", tail, " is more than ",
                                                     req_.sq_entries, " past head ", head_));
      }
      // A doorbell that brings nothing new costs us a receive: bound how many in a row.
      if (tail - head_ <= tail_ - head_) {
        if (++idle_doorbells_ > ctx_.opts.max_idle_doorbells) {
          co_return absl::ResourceExhaustedError(absl::StrCat(
              "doorbell flood: ", idle_doorbells_, " doorbells without new descriptors"));
        }
        co_return absl::OkStatus();
      }
      idle_doorbells_ = 0;
      tail_ = tail;
      co_return absl::OkStatus();
    }
    case ControlType::kRegisterRegion: {
      reply.type = static_cast<std::uint16_t>(ControlType::kRegisterRegionReply);
      // Untrusted: addr/length/rkey are the client's claim. We bound them so our own arithmetic
      // cannot overflow; the NIC checks the claim against the MR on every access.
      absl::Status st;
      if (m.length == 0 || m.length > ctx_.opts.max_region_bytes || m.addr + m.length < m.addr ||
          (m.flags & ~rdma::kRegionFlagsKnown) != 0) {
        st = absl::InvalidArgumentError("bad region");
      } else if (regions_.size() >= ctx_.opts.max_regions_per_connection) {
        st = absl::ResourceExhaustedError("region limit");
      }
      if (st.ok()) {
        reply.handle = next_handle_++;
        regions_[reply.handle] = GrantedRegion{m.addr, m.length, m.rkey,
                                               (m.flags & rdma::kRegionDeviceWritable) != 0};
      }
      reply.code = static_cast<std::int32_t>(st.code());
      co_return co_await Send(reply);
    }
    case ControlType::kDeregisterRegion: {
      reply.type = static_cast<std::uint16_t>(ControlType::kDeregisterRegionReply);
      // Revoking the grant: later descriptors naming it complete kUnknownRegion; so do REMOTE
      // ops naming an export of it.
      grants.RevokeRegion(id_, m.handle);
      reply.code = regions_.erase(m.handle) == 1
                       ? 0
                       : static_cast<std::int32_t>(absl::StatusCode::kNotFound);
      co_return co_await Send(reply);
    }
    default:
      co_return absl::InvalidArgumentError(
          absl::StrCat("message type ", m.type, " is not one a client sends"));
  }
}

rdma_async::Task<absl::Status> Connection::Execute() {
  std::uint32_t started = 0;
  while (head_ != tail_) {
    // Fetch: the contiguous run [head, min(tail, end of ring)) in one RDMA READ.
    const std::uint32_t slot = head_ & sq_mask_;
    const std::uint32_t n = std::min(tail_ - head_, req_.sq_entries - slot);
    if (absl::Status s = co_await RunOp(
            IBV_WR_RDMA_READ, mem_->mr(), sq_off_ + std::uint64_t{slot} * sizeof(Descriptor),
            n * static_cast<std::uint32_t>(sizeof(Descriptor)),
            req_.sq_addr + std::uint64_t{slot} * sizeof(Descriptor), req_.sq_rkey);
        !s.ok()) {
      co_return s;
    }
    const std::uint32_t first_cq = cq_tail_;
    for (std::uint32_t i = 0; i < n; ++i) {
      Descriptor d;
      // Our private copy (the client cannot change it); validated in ExecuteOne.
      std::memcpy(&d, base() + sq_off_ + std::uint64_t{slot + i} * sizeof(Descriptor), sizeof d);
      Completion comp{};
      comp.user_data = d.user_data;
      const CompletionStatus status = co_await ExecuteOne(d, *this, &comp.result);
      if (!error_.ok()) co_return error_;  // the transport failed under this descriptor
      comp.status = static_cast<std::int32_t>(status);
      std::memcpy(base() + cq_off_ + std::uint64_t{cq_tail_ & cq_mask_} * sizeof(Completion),
                  &comp, sizeof comp);
      ++cq_tail_;
    }
    head_ += n;
    started += n;
    // The notification needs a send slot: wait for one first, so that the completion WRITEs
    // below are never more than two ahead of a SEND (kSendDepth counts them).
    while (std::all_of(send_busy_.begin(), send_busy_.end(), [](bool b) { return b; })) {
      rdma_async::Event freed(ctx_.ready);
      slot_waiter_ = &freed;
      slot_deadline_ = absl::Now() + ctx_.opts.op_timeout;
      if (absl::Status s = co_await freed; !s.ok()) co_return s;
      if (!usable()) co_return error_;
    }
    // Complete: RDMA WRITE the new completions (one or two runs around the wrap), not waited
    // for: the notification SEND posted right after them on the same RC QP is delivered only
    // after their data, so the client may read the completions as soon as it polls that
    // receive, and the SEND's completion retires them. The staged completions are not
    // rewritten before the client has reaped them (a new one for the same slot needs the ring
    // to wrap); a client that overruns its CQ only garbles its own completions.
    for (std::uint32_t done = first_cq; done != cq_tail_;) {
      const std::uint32_t cslot = done & cq_mask_;
      const std::uint32_t k = std::min(cq_tail_ - done, req_.cq_entries - cslot);
      if (!usable()) co_return error_;
      // Unsignaled, with an op id no waiter has: a failure still completes, into Poll.
      if (absl::Status s = ch_->PostWrite(
              mem_->mr(), cq_off_ + std::uint64_t{cslot} * sizeof(Completion),
              k * static_cast<std::uint32_t>(sizeof(Completion)),
              req_.cq_addr + std::uint64_t{cslot} * sizeof(Completion), req_.cq_rkey,
              ctx_.ops.NextId(), /*signaled=*/false);
          !s.ok()) {
        Break(s);
        co_return s;
      }
      done += k;
    }
    // ... then the notification.
    ControlMessage note{};
    note.magic = rdma::kRdmaMagic;
    note.type = static_cast<std::uint16_t>(ControlType::kCompletions);
    note.value = cq_tail_;
    if (absl::Status s = co_await Send(note); !s.ok()) co_return s;
  }
  if (started > 0) {
    descriptors_ += started;
    ctx_.Count([started](RdmaListenerStats& s) { s.descriptors += started; });
  }
  co_return absl::OkStatus();
}

}  // namespace pinring::ringd
