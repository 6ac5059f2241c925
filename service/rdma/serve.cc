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
using rdma::kSendTag;

rdma_async::Task<absl::Status> Connection::Serve() {
  while (!inbox_.empty() || head_ != tail_) {
    auto arrived = std::move(inbox_);
    inbox_.clear();
    for (const Arrived& a : arrived) {
      Received r;
      if (absl::Status s = TakeMessage(a, &r); !s.ok()) co_return s;
      if (absl::Status s = co_await HandleMessage(r); !s.ok()) co_return s;
    }
    if (absl::Status s = co_await Execute(); !s.ok()) co_return s;
  }
  co_return absl::OkStatus();
}

absl::Status Connection::HandleDoorbell(const Received& r) {
  const auto tail = static_cast<std::uint32_t>(r.m.value);
  // Untrusted tail: it may be anything. Between our own head and head + sq_entries it names
  // descriptors the client wrote; beyond that the client broke the protocol (or lies).
  if (tail - head_ > req_.sq_entries) {
    return absl::OutOfRangeError(absl::StrCat("doorbell tail ", tail, " is more than ",
                                              req_.sq_entries, " past head ", head_));
  }
  if (r.m.type == static_cast<std::uint16_t>(ControlType::kDoorbellInline)) {
    // Untrusted count (1..kMaxInlineDescriptors, checked by IsWellFormed): the descriptors must
    // be exactly the next ones after those already announced, [tail_, tail).
    const auto n = static_cast<std::uint32_t>(r.m.length);
    if (tail - tail_ != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inline doorbell carries descriptors [", tail - n, ", ", tail,
          ") but the next descriptor ringd expects is ", tail_));
    }
    idle_doorbells_ = 0;
    if (fetched_ == tail_) {
      // Nothing announced is still to be READ: stage the inline copies where a READ would have
      // put them (our private copy; validated when executed, like a READ's).
      for (std::uint32_t i = 0; i < n; ++i) {
        std::memcpy(base() + sq_off_ + std::uint64_t{(tail_ + i) & sq_mask_} * sizeof(Descriptor),
                    &r.inline_descs[i], sizeof(Descriptor));
      }
      fetched_ = tail;
      inline_descriptors_ += n;
      ctx_.Count([n](RdmaListenerStats& s) { s.inline_descriptors += n; });
    }
    // Otherwise an earlier pull doorbell is still to be READ: this batch is READ with it (the
    // client wrote it to its SQ ring too).
    tail_ = tail;
    return absl::OkStatus();
  }
  // A doorbell that brings nothing new costs us a receive: bound how many in a row.
  if (tail - head_ <= tail_ - head_) {
    if (++idle_doorbells_ > ctx_.opts.max_idle_doorbells) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "doorbell flood: ", idle_doorbells_, " doorbells without new descriptors"));
    }
    return absl::OkStatus();
  }
  idle_doorbells_ = 0;
  tail_ = tail;
  return absl::OkStatus();
}

rdma_async::Task<absl::Status> Connection::HandleMessage(const Received& r) {
  const ControlMessage& m = r.m;
  const std::uint32_t len = r.len;
  // Untrusted: a client may only SEND to ringd (a zero-length WRITE_WITH_IMM needs no rkey).
  if (!r.is_send) {
    co_return absl::InvalidArgumentError(
        "the client sent an RDMA WRITE_WITH_IMM: ringd accepts only SENDs");
  }
  // Untrusted: the size, magic and type decide whether this is a message at all.
  if (!rdma::IsWellFormed(m, len)) {
    if (m.magic == rdma::kRdmaMagic &&
        m.type == static_cast<std::uint16_t>(ControlType::kDoorbellInline)) {
      co_return absl::InvalidArgumentError(absl::StrCat(
          "inline doorbell of ", len, " bytes claims ", m.length, " descriptors (1 to ",
          rdma::kMaxInlineDescriptors, ", ", sizeof(ControlMessage), " + ", sizeof(Descriptor),
          " bytes each)"));
    }
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
    case ControlType::kDoorbell:
    case ControlType::kDoorbellInline:
      co_return HandleDoorbell(r);
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
    const std::uint32_t slot = head_ & sq_mask_;
    std::uint32_t n;
    if (fetched_ != head_) {
      // Staged already (an inline doorbell): the contiguous run [head, min(fetched, end)).
      n = std::min(fetched_ - head_, req_.sq_entries - slot);
    } else {
      // Fetch: the contiguous run [head, min(tail, end of ring)) in one RDMA READ.
      n = std::min(tail_ - head_, req_.sq_entries - slot);
      if (absl::Status s = co_await RunOp(
              IBV_WR_RDMA_READ, mem_->mr(), sq_off_ + std::uint64_t{slot} * sizeof(Descriptor),
              n * static_cast<std::uint32_t>(sizeof(Descriptor)),
              req_.sq_addr + std::uint64_t{slot} * sizeof(Descriptor), req_.sq_rkey);
          !s.ok()) {
        co_return s;
      }
      fetched_ = head_ + n;
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
    // below are never more than one ahead of a notification (kSendDepth counts them).
    while (FreeSendSlot() < 0) {
      rdma_async::Event freed(ctx_.ready);
      slot_waiter_ = &freed;
      slot_deadline_ = absl::Now() + ctx_.opts.op_timeout;
      if (absl::Status s = co_await freed; !s.ok()) co_return s;
      if (!usable()) co_return error_;
    }
    // Complete: RDMA WRITE the new completions (one or two runs around the wrap); the last is a
    // WRITE_WITH_IMM carrying the new CQ tail, which is the client's notification. The one
    // before it is not waited for: RC delivers it before the WRITE_WITH_IMM's data and receive
    // completion, and the notification's own completion (signaled, holding a send slot like a
    // SEND) retires both. The staged completions are not rewritten before the client has
    // reaped them (a new one for the same slot needs the ring to wrap); a client that overruns
    // its CQ only garbles its own completions.
    for (std::uint32_t done = first_cq; done != cq_tail_;) {
      const std::uint32_t cslot = done & cq_mask_;
      const std::uint32_t k = std::min(cq_tail_ - done, req_.cq_entries - cslot);
      if (!usable()) co_return error_;
      const std::uint64_t local = cq_off_ + std::uint64_t{cslot} * sizeof(Completion);
      const std::uint64_t remote = req_.cq_addr + std::uint64_t{cslot} * sizeof(Completion);
      const auto bytes = k * static_cast<std::uint32_t>(sizeof(Completion));
      absl::Status s;
      if (done + k != cq_tail_) {
        // Unsignaled, with an op id no waiter has: a failure still completes, into Poll.
        s = ch_->PostWrite(mem_->mr(), local, bytes, remote, req_.cq_rkey, ctx_.ops.NextId(),
                           /*signaled=*/false);
      } else {
        const int note = FreeSendSlot();  // >= 0: waited for above, and nothing ran since
        s = ch_->PostWriteImm(mem_->mr(), local, bytes, remote, req_.cq_rkey, cq_tail_,
                              kSendTag | static_cast<std::uint32_t>(note), /*signaled=*/true);
        if (s.ok()) send_busy_[static_cast<std::uint32_t>(note)] = true;
      }
      if (!s.ok()) {
        Break(s);
        co_return s;
      }
      done += k;
    }
  }
  if (started > 0) {
    descriptors_ += started;
    ctx_.Count([started](RdmaListenerStats& s) { s.descriptors += started; });
  }
  co_return absl::OkStatus();
}

}  // namespace pinring::ringd
