#include "pinring/rdma_queue.h"

#include "pinring/descriptors.h"

#include <arpa/inet.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "verbs/private_region.h"
#include "verbs/rdma_channel.h"
#include "wire/rdma_wire.h"
#include "pinring/spsc_ring.h"
#include "pinring/status.h"
#include "verbs/verbs_device.h"

namespace pinring {
namespace {

using rdma::ControlMessage;
using rdma::ControlType;

using rdma::kRecvTag;
using rdma::kRequestSlotBytes;
using rdma::kSendSlots;
using rdma::kSendTag;
using rdma::kSlotBytes;

// Where the device writes under `mode`: kReadOnly memory cannot be written by the device, so
// device-written buffers of a readonly queue use the kernel mode.
ForkMode DeviceWrittenMode(ForkMode mode) {
  return mode == ForkMode::kReadOnly ? ForkMode::kKernel : mode;
}

absl::Status CodeStatus(std::int32_t code, absl::string_view what) {
  if (code == 0) return absl::OkStatus();
  const auto c = (code > 0 && code <= 16) ? static_cast<absl::StatusCode>(code)
                                          : absl::StatusCode::kUnknown;
  return absl::Status(c, what);
}

}  // namespace

std::byte* RdmaRegion::data() const { return static_cast<std::byte*>(mem_->data()); }
ForkMode RdmaRegion::mode() const { return mem_->mode(); }

absl::StatusOr<std::unique_ptr<RdmaQueue>> RdmaQueue::Connect(const RdmaQueueOptions& opts) {
  const std::uint32_t cq_entries = opts.cq_entries == 0 ? opts.sq_entries : opts.cq_entries;
  if (!IsValidRingSize(opts.sq_entries) || !IsValidRingSize(cq_entries) ||
      cq_entries < opts.sq_entries) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ring sizes must be powers of two in [", kMinRingEntries, ", ", kMaxRingEntries,
        "] with cq_entries >= sq_entries (got ", opts.sq_entries, "/", cq_entries, ")"));
  }
  auto q = std::unique_ptr<RdmaQueue>(new RdmaQueue());
  q->opts_ = opts;
  q->sq_entries_ = opts.sq_entries;
  q->cq_entries_ = cq_entries;
  // One completion notification per ringd batch, at most cq_entries unreaped, plus replies.
  q->recv_depth_ = cq_entries + rdma::kControlSlack;
  q->send_slots_ = kSendSlots;
  q->send_busy_.assign(kSendSlots, false);

  // init: route to ringd -> the device that route uses -> our PD on it.
  PINRING_ASSIGN_OR_RETURN(q->channel_,
                           rdma::RdmaChannel::Resolve(opts.address, opts.port, opts.timeout));
  PINRING_ASSIGN_OR_RETURN(q->device_,
                           VerbsDevice::Adopt(q->channel_->verbs(), q->channel_->port_num()));
  rdma::RdmaChannel::QpOptions qo;
  qo.send_depth = kSendSlots;
  qo.recv_depth = q->recv_depth_;
  PINRING_RETURN_IF_ERROR(q->channel_->CreateQp(*q->device_, qo));

  // pin: the submission ring under the chosen mode (ringd only reads it), the completion ring and
  // the control buffers where the device writes.
  PrivateRegion::Options so;
  so.mode = opts.fork_mode;
  so.device_writes = false;
  PINRING_ASSIGN_OR_RETURN(q->sq_, PrivateRegion::Create(*q->device_,
                                                         rdma::SqBytes(q->sq_entries_), so));
  PrivateRegion::Options co;
  co.mode = DeviceWrittenMode(opts.fork_mode);
  co.device_writes = true;
  PINRING_ASSIGN_OR_RETURN(q->cq_, PrivateRegion::Create(*q->device_,
                                                         rdma::CqBytes(q->cq_entries_), co));
  // Control buffers: recv_depth receive slots (ringd's messages), then the send slots (ours,
  // large enough for an inline doorbell).
  PINRING_ASSIGN_OR_RETURN(
      q->ctl_, PrivateRegion::Create(*q->device_,
                                     std::size_t{q->recv_depth_} * kSlotBytes +
                                         std::size_t{kSendSlots} * kRequestSlotBytes,
                                     co));
  std::memset(q->sq_->data(), 0, q->sq_->size());
  std::memset(q->cq_->data(), 0, q->cq_->size());
  for (std::uint32_t i = 0; i < q->recv_depth_; ++i) {
    PINRING_RETURN_IF_ERROR(q->channel_->PostRecv(q->ctl_->mr(), std::uint64_t{i} * kSlotBytes,
                                                  kSlotBytes, kRecvTag | i));
  }

  // connect: the rings' addresses and rkeys travel in the CM private data.
  rdma::ConnectRequest req{};
  req.magic = rdma::kRdmaMagic;
  req.version = rdma::kRdmaVersion;
  req.flags = ForkModeIsDeviceReadOnly(opts.fork_mode) ? rdma::kConnectFlagSqReadOnly : 0;
  req.sq_entries = q->sq_entries_;
  req.cq_entries = q->cq_entries_;
  req.sq_addr = reinterpret_cast<std::uint64_t>(q->sq_->data());
  req.cq_addr = reinterpret_cast<std::uint64_t>(q->cq_->data());
  req.sq_rkey = q->sq_->mr().rkey();
  req.cq_rkey = q->cq_->mr().rkey();
  req.recv_depth = q->recv_depth_;
  std::string reply;
  absl::Status st = q->channel_->Connect(
      absl::MakeConstSpan(reinterpret_cast<const std::byte*>(&req), sizeof req), opts.timeout,
      &reply);
  rdma::ConnectReply rep{};
  const bool have_reply = reply.size() >= sizeof rep;
  if (have_reply) std::memcpy(&rep, reply.data(), sizeof rep);
  if (!st.ok()) {
    if (have_reply && rep.magic == rdma::kRdmaMagic && rep.code != 0) {
      rep.text[sizeof rep.text - 1] = '\0';
      return absl::UnavailableError(absl::StrCat("ringd at ", opts.address, ":", opts.port,
                                                 " rejected the connection: ", rep.text));
    }
    return absl::Status(st.code(), absl::StrCat("connecting to ringd at ", opts.address, ":",
                                                opts.port, ": ", st.message()));
  }
  if (have_reply && rep.magic == rdma::kRdmaMagic) q->connection_id_ = rep.connection_id;
  return q;
}

RdmaQueue::~RdmaQueue() {
  if (channel_ != nullptr) {
    channel_->Disconnect();
    channel_->DestroyQp();  // QP + CQ before the PD they belong to
  }
  for (auto& r : regions_) {
    if (r->mr_revoked_) (void)r->mem_.release();  // its MR is already deregistered
  }
  regions_.clear();
  if (rings_deregistered_) {  // DeregisterRingsForTesting: the MRs are gone already
    (void)sq_.release();
    (void)cq_.release();
  }
  ctl_.reset();
  cq_.reset();
  sq_.reset();
  device_.reset();   // the PD, before the cm_id releases the device context
  channel_.reset();  // cm_id + event channel
}

const std::string& RdmaQueue::device_name() const { return device_->name(); }

void RdmaQueue::Fail(absl::Status s) {
  if (error_.ok()) error_ = std::move(s);
}

absl::Status RdmaQueue::HandleReceive(std::uint32_t slot, std::uint32_t len) {
  ControlMessage m{};
  std::memcpy(&m, static_cast<const std::byte*>(ctl_->data()) + std::uint64_t{slot} * kSlotBytes,
              std::min<std::size_t>(len, sizeof m));
  // Repost first: the slot's bytes are already copied out.
  PINRING_RETURN_IF_ERROR(channel_->PostRecv(ctl_->mr(), std::uint64_t{slot} * kSlotBytes,
                                             kSlotBytes, kRecvTag | slot));
  if (!rdma::IsWellFormed(m, len)) {
    return absl::DataLossError(absl::StrCat("malformed message from ringd (", len, " bytes)"));
  }
  switch (static_cast<ControlType>(m.type)) {
    case ControlType::kRegisterRegionReply:
    case ControlType::kDeregisterRegionReply:
    case ControlType::kExportRegionReply:
    case ControlType::kRevokeGrantReply:
      reply_seq_ = m.seq;
      reply_code_ = m.code;
      reply_handle_ = m.handle;
      reply_value_ = m.value;
      reply_addr_ = m.addr;
      return absl::OkStatus();
    case ControlType::kError:
      m.text[sizeof m.text - 1] = '\0';
      return CodeStatus(m.code == 0 ? static_cast<std::int32_t>(absl::StatusCode::kInternal)
                                    : m.code,
                        absl::StrCat("ringd closed the connection: ", m.text));
    default:
      return absl::DataLossError(absl::StrCat("unexpected message type ", m.type, " from ringd"));
  }
}

absl::Status RdmaQueue::HandleCompletions(std::uint32_t slot, std::uint32_t tail) {
  // A WRITE_WITH_IMM consumed the receive; its slot holds nothing.
  PINRING_RETURN_IF_ERROR(channel_->PostRecv(ctl_->mr(), std::uint64_t{slot} * kSlotBytes,
                                             kSlotBytes, kRecvTag | slot));
  // ringd is the peer we chose to trust with our memory, but a bogus tail would make us read
  // completions that were never written: bound it by what we submitted.
  if (tail - cq_head_ > sq_tail_ - cq_head_) {
    return absl::DataLossError(absl::StrCat("ringd reported cq tail ", tail,
                                            " beyond submissions (head ", cq_head_,
                                            ", submitted ", sq_tail_, ")"));
  }
  if (tail - cq_head_ > cq_tail_seen_ - cq_head_) cq_tail_seen_ = tail;
  return absl::OkStatus();
}

absl::Status RdmaQueue::PollOnce(bool* progressed, bool check_cm) {
  ibv_wc wc[16];
  PINRING_ASSIGN_OR_RETURN(int n, channel_->Poll(absl::MakeSpan(wc)));
  for (int i = 0; i < n; ++i) {
    *progressed = true;
    if (wc[i].status != IBV_WC_SUCCESS) {
      Fail(absl::UnavailableError(absl::StrCat("rdma connection to ringd failed: ",
                                               ibv_wc_status_str(wc[i].status))));
      continue;
    }
    if (wc[i].wr_id & kSendTag) {
      send_busy_[wc[i].wr_id & 0xffff] = false;
    } else if (wc[i].wr_id & kRecvTag) {
      const auto slot = static_cast<std::uint32_t>(wc[i].wr_id & 0xffffffff);
      // A receive is a notification (WRITE_WITH_IMM: the completions are in place) or a message.
      absl::Status s = wc[i].opcode == IBV_WC_RECV_RDMA_WITH_IMM
                           ? HandleCompletions(slot, ntohl(wc[i].imm_data))
                           : HandleReceive(slot, wc[i].byte_len);
      if (!s.ok()) Fail(s);
    }
  }
  if (n == 0 && check_cm && error_.ok() && channel_->PollDisconnected()) {
    Fail(absl::UnavailableError("ringd disconnected"));
  }
  return absl::OkStatus();
}

absl::Status RdmaQueue::WaitForProgress(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const bool block = opts_.completion_wait == wire::CompletionWait::kBlock;
  for (std::uint32_t spins = 0;; ++spins) {
    // Spinning: the CQ poll is user-space only; the rdma_cm check, the clock and the yield are
    // done every 64th empty poll (each a system call or more, and under emulation a system call
    // costs microseconds: doing them every poll delayed noticing a completion).
    const bool slow = block || (spins & 63) == 63;
    bool progressed = false;
    PINRING_RETURN_IF_ERROR(PollOnce(&progressed, /*check_cm=*/slow));
    if (progressed || !error_.ok()) return absl::OkStatus();
    if (!slow) {
      CpuRelax();
      continue;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::OkStatus();
    if (block) {
      // Sleep on the completion channel; the CQ is armed, so any completion after the arm wakes
      // us. Wake at least every 100 ms to notice a CM disconnect.
      PINRING_RETURN_IF_ERROR(
          channel_->WaitCqEvent(std::min(left, absl::Milliseconds(100))).status());
    } else {
      sched_yield();  // on a small machine, whatever serves us may need the CPU we spin on
    }
  }
}

std::byte* RdmaQueue::SendSlot(std::uint32_t i) const {
  return static_cast<std::byte*>(ctl_->data()) + std::uint64_t{recv_depth_} * kSlotBytes +
         std::uint64_t{i} * kRequestSlotBytes;
}

template <typename Fill>
absl::Status RdmaQueue::SendBuilt(std::size_t bytes, Fill fill) {
  const absl::Time deadline = absl::Now() + opts_.timeout;
  for (;;) {
    for (std::uint32_t i = 0; i < send_slots_; ++i) {
      if (send_busy_[i]) continue;
      std::byte* slot = SendSlot(i);
      fill(slot);
      PINRING_RETURN_IF_ERROR(channel_->PostSend(
          ctl_->mr(), static_cast<std::uint64_t>(slot - static_cast<std::byte*>(ctl_->data())),
          static_cast<std::uint32_t>(bytes), kSendTag | i, true));
      send_busy_[i] = true;
      return absl::OkStatus();
    }
    if (!error_.ok()) return error_;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("no send slot freed: ringd is not receiving");
    }
    PINRING_RETURN_IF_ERROR(WaitForProgress(absl::Milliseconds(50)));
  }
}

absl::Status RdmaQueue::SendControl(const void* msg) {
  return SendBuilt(sizeof(ControlMessage),
                   [msg](std::byte* slot) { std::memcpy(slot, msg, sizeof(ControlMessage)); });
}

absl::Status RdmaQueue::Submit(absl::Span<const Descriptor> descs) {
  if (!error_.ok()) return error_;
  if (descs.size() > sq_entries_ - in_flight()) {
    return absl::ResourceExhaustedError(absl::StrCat("submission ring has ",
                                                     sq_entries_ - in_flight(),
                                                     " free slots, ", descs.size(),
                                                     " requested: reap completions first"));
  }
  auto* sq = static_cast<Descriptor*>(sq_->data());
  for (const Descriptor& d : descs) {
    sq[sq_tail_ & (sq_entries_ - 1)] = d;
    ++sq_tail_;
  }
  // The doorbell's SEND is posted after the descriptor stores; ibv_post_send's own barrier (the
  // provider's doorbell write) orders them before the NIC, and ringd's RDMA READ is issued only
  // after it received this SEND.
  std::atomic_thread_fence(std::memory_order_release);
  ControlMessage m{};
  m.magic = rdma::kRdmaMagic;
  m.type = static_cast<std::uint16_t>(ControlType::kDoorbell);
  m.value = sq_tail_;
  const std::size_t max_inline =
      std::min<std::size_t>(opts_.max_inline_descriptors, rdma::kMaxInlineDescriptors);
  if (descs.empty() || descs.size() > max_inline) return SendControl(&m);
  // Small batch: the descriptors ride in the doorbell too (ringd skips its READ of them).
  m.type = static_cast<std::uint16_t>(ControlType::kDoorbellInline);
  m.length = descs.size();
  return SendBuilt(rdma::InlineDoorbellBytes(descs.size()), [&](std::byte* slot) {
    std::memcpy(slot, &m, sizeof m);
    std::memcpy(slot + sizeof m, descs.data(), descs.size() * sizeof(Descriptor));
  });
}

absl::StatusOr<std::size_t> RdmaQueue::Reap(absl::Span<Completion> out,
                                            absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (cq_tail_seen_ != cq_head_) {
      // The completions were RDMA-written by (or before) the WRITE_WITH_IMM whose receive we
      // polled; polling the CQ made them visible. The acquire fence keeps the compiler from hoisting the reads.
      std::atomic_thread_fence(std::memory_order_acquire);
      const auto* cq = static_cast<const Completion*>(cq_->data());
      std::size_t n = 0;
      while (n < out.size() && cq_head_ != cq_tail_seen_) {
        out[n++] = cq[cq_head_ & (cq_entries_ - 1)];
        ++cq_head_;
      }
      return n;
    }
    if (!error_.ok()) return error_;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      // Out of time (or a zero timeout: a peek): still look at what already arrived, once per
      // round, so a notification sitting in the CQ is not reported as "nothing".
      bool progressed = false;
      PINRING_RETURN_IF_ERROR(PollOnce(&progressed, /*check_cm=*/false));
      if (!progressed) return std::size_t{0};
      continue;
    }
    PINRING_RETURN_IF_ERROR(WaitForProgress(left));
  }
}

absl::StatusOr<Completion> RdmaQueue::SubmitAndWait(const Descriptor& d,
                                                    absl::Duration timeout) {
  PINRING_RETURN_IF_ERROR(Submit(absl::MakeConstSpan(&d, 1)));
  Completion c{};
  PINRING_ASSIGN_OR_RETURN(std::size_t n, Reap(absl::MakeSpan(&c, 1), timeout));
  if (n == 0) {
    return absl::DeadlineExceededError(
        absl::StrCat("no completion within ", absl::FormatDuration(timeout)));
  }
  return c;
}

absl::StatusOr<RdmaRegion*> RdmaQueue::CreateRegion(std::size_t size,
                                                    std::optional<ForkMode> mode) {
  if (!error_.ok()) return error_;
  if (size == 0) return absl::InvalidArgumentError("region size 0");
  const ForkMode m = mode.value_or(opts_.fork_mode);
  auto r = std::make_unique<RdmaRegion>();
  PrivateRegion::Options po;
  po.mode = m;
  po.device_writes = !ForkModeIsDeviceReadOnly(m);
  PINRING_ASSIGN_OR_RETURN(r->mem_, PrivateRegion::Create(*device_, size, po));
  r->size_ = size;
  ControlMessage msg{};
  msg.magic = rdma::kRdmaMagic;
  msg.type = static_cast<std::uint16_t>(ControlType::kRegisterRegion);
  msg.seq = seq_++;
  msg.addr = reinterpret_cast<std::uint64_t>(r->mem_->data());
  msg.length = size;
  msg.rkey = r->mem_->mr().rkey();
  msg.flags = po.device_writes ? rdma::kRegionDeviceWritable : 0;
  PINRING_RETURN_IF_ERROR(SendControl(&msg));
  const absl::Time deadline = absl::Now() + opts_.timeout;
  while (reply_seq_ != msg.seq) {
    if (!error_.ok()) return error_;
    if (absl::Now() > deadline) return absl::DeadlineExceededError("RegisterRegion: no reply");
    PINRING_RETURN_IF_ERROR(WaitForProgress(absl::Milliseconds(100)));
  }
  PINRING_RETURN_IF_ERROR(CodeStatus(reply_code_, "ringd refused the region"));
  r->handle_ = reply_handle_;
  regions_.push_back(std::move(r));
  return regions_.back().get();
}

absl::Status RdmaQueue::DestroyRegion(RdmaRegion* region) {
  auto it = std::find_if(regions_.begin(), regions_.end(),
                         [&](const auto& r) { return r.get() == region; });
  if (it == regions_.end()) return absl::NotFoundError("not a region of this queue");
  if (error_.ok()) {
    ControlMessage msg{};
    msg.magic = rdma::kRdmaMagic;
    msg.type = static_cast<std::uint16_t>(ControlType::kDeregisterRegion);
    msg.seq = seq_++;
    msg.handle = region->handle_;
    PINRING_RETURN_IF_ERROR(SendControl(&msg));
    const absl::Time deadline = absl::Now() + opts_.timeout;
    while (reply_seq_ != msg.seq && error_.ok()) {
      if (absl::Now() > deadline) return absl::DeadlineExceededError("DeregisterRegion: no reply");
      PINRING_RETURN_IF_ERROR(WaitForProgress(absl::Milliseconds(100)));
    }
  }
  if ((*it)->mr_revoked_) (void)(*it)->mem_.release();
  regions_.erase(it);  // deregisters (unpins) and unmaps
  return absl::OkStatus();
}

absl::StatusOr<rdma::GrantToken> RdmaQueue::ExportRegion(RdmaRegion* region) {
  if (!error_.ok()) return error_;
  auto it = std::find_if(regions_.begin(), regions_.end(),
                         [&](const auto& r) { return r.get() == region; });
  if (it == regions_.end()) return absl::NotFoundError("not a region of this queue");
  ControlMessage msg{};
  msg.magic = rdma::kRdmaMagic;
  msg.type = static_cast<std::uint16_t>(ControlType::kExportRegion);
  msg.seq = seq_++;
  msg.handle = region->handle_;
  PINRING_RETURN_IF_ERROR(SendControl(&msg));
  const absl::Time deadline = absl::Now() + opts_.timeout;
  while (reply_seq_ != msg.seq) {
    if (!error_.ok()) return error_;
    if (absl::Now() > deadline) return absl::DeadlineExceededError("ExportRegion: no reply");
    PINRING_RETURN_IF_ERROR(WaitForProgress(absl::Milliseconds(100)));
  }
  PINRING_RETURN_IF_ERROR(CodeStatus(reply_code_, "ringd refused to export the region"));
  rdma::GrantToken t;
  t.node = reply_addr_;
  t.handle = reply_handle_;
  t.key = reply_value_;
  return t;
}

absl::Status RdmaQueue::RevokeGrant(const rdma::GrantToken& token) {
  if (!error_.ok()) return error_;
  ControlMessage msg{};
  msg.magic = rdma::kRdmaMagic;
  msg.type = static_cast<std::uint16_t>(ControlType::kRevokeGrant);
  msg.seq = seq_++;
  msg.handle = token.handle;
  PINRING_RETURN_IF_ERROR(SendControl(&msg));
  const absl::Time deadline = absl::Now() + opts_.timeout;
  while (reply_seq_ != msg.seq) {
    if (!error_.ok()) return error_;
    if (absl::Now() > deadline) return absl::DeadlineExceededError("RevokeGrant: no reply");
    PINRING_RETURN_IF_ERROR(WaitForProgress(absl::Milliseconds(100)));
  }
  return CodeStatus(reply_code_, "ringd refused to revoke the grant");
}

Descriptor RemoteWriteDescriptor(const rdma::GrantToken& dst, std::uint64_t dst_offset,
                                 std::uint32_t src_region, std::uint64_t src_offset,
                                 std::uint64_t length, std::uint64_t user_data) {
  // The grant's key travels in `value`, its node in reserved2 (ring_format.h).
  Descriptor d = MakeDescriptor(static_cast<Opcode>(kOpRemoteWrite), 0, src_region, src_offset,
                                dst.handle, dst_offset, length, dst.key, user_data);
  d.reserved2 = dst.node;
  return d;
}

Descriptor RemoteReadDescriptor(const rdma::GrantToken& src, std::uint64_t src_offset,
                                std::uint32_t dst_region, std::uint64_t dst_offset,
                                std::uint64_t length, std::uint64_t user_data) {
  Descriptor d = MakeDescriptor(static_cast<Opcode>(kOpRemoteRead), 0, src.handle, src_offset,
                                dst_region, dst_offset, length, src.key, user_data);
  d.reserved2 = src.node;
  return d;
}

std::string FormatGrantToken(const rdma::GrantToken& t) {
  return absl::StrCat(absl::Hex(t.node), ":", absl::Hex(t.handle), ":", absl::Hex(t.key));
}

absl::StatusOr<rdma::GrantToken> ParseGrantToken(absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(absl::StripAsciiWhitespace(text), ':');
  rdma::GrantToken t;
  std::uint64_t handle = 0;
  if (parts.size() != 3 || !absl::SimpleHexAtoi(parts[0], &t.node) ||
      !absl::SimpleHexAtoi(parts[1], &handle) || handle > 0xffffffffu ||
      !absl::SimpleHexAtoi(parts[2], &t.key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("grant token '", text, "' is not node:handle:key in hex"));
  }
  t.handle = static_cast<std::uint32_t>(handle);
  return t;
}

Descriptor* RdmaQueue::SqSlotForTesting(std::uint32_t index) {
  return static_cast<Descriptor*>(sq_->data()) + (index & (sq_entries_ - 1));
}

absl::Status RdmaQueue::RingDoorbellForTesting(std::uint32_t tail) {
  ControlMessage m{};
  m.magic = rdma::kRdmaMagic;
  m.type = static_cast<std::uint16_t>(ControlType::kDoorbell);
  m.value = tail;
  return SendControl(&m);
}

absl::Status RdmaQueue::SendRawForTesting(absl::Span<const std::byte> bytes) {
  if (bytes.size() > kRequestSlotBytes) return absl::InvalidArgumentError("raw message too long");
  for (std::uint32_t i = 0; i < send_slots_; ++i) {
    if (send_busy_[i]) continue;
    std::memcpy(SendSlot(i), bytes.data(), bytes.size());
    PINRING_RETURN_IF_ERROR(channel_->PostSend(
        ctl_->mr(), std::uint64_t{recv_depth_} * kSlotBytes + std::uint64_t{i} * kRequestSlotBytes,
        static_cast<std::uint32_t>(bytes.size()), kSendTag | i, true));
    send_busy_[i] = true;
    return absl::OkStatus();
  }
  return absl::UnavailableError("no free send slot");
}

absl::Status RdmaQueue::WriteWithImmForTesting() {
  for (std::uint32_t i = 0; i < send_slots_; ++i) {
    if (send_busy_[i]) continue;
    PINRING_RETURN_IF_ERROR(
        channel_->PostWriteImm(ctl_->mr(), 0, 0, 0, 0, 0x5eed, kSendTag | i, true));
    send_busy_[i] = true;
    return absl::OkStatus();
  }
  return absl::UnavailableError("no free send slot");
}

absl::Status RdmaQueue::DeregisterRingsForTesting() {
  // const_cast-free: PrivateRegion exposes the MR const; deregistering needs the ibv_mr itself.
  if (int rc = ibv_dereg_mr(sq_->mr().mr()); rc != 0) return pinring::ErrnoToStatus(rc, "dereg sq");
  if (int rc = ibv_dereg_mr(cq_->mr().mr()); rc != 0) return pinring::ErrnoToStatus(rc, "dereg cq");
  // The PrivateRegions still hold the (now dangling) ibv_mr pointers: the destructor leaks them
  // on purpose so they are not deregistered twice. The memory stays mapped and writable.
  rings_deregistered_ = true;
  return absl::OkStatus();
}

absl::Status RdmaQueue::RevokeRegionMrForTesting(RdmaRegion* region) {
  if (int rc = ibv_dereg_mr(region->mem_->mr().mr()); rc != 0) {
    return pinring::ErrnoToStatus(rc, "ibv_dereg_mr(region)");
  }
  region->mr_revoked_ = true;
  return absl::OkStatus();
}

}  // namespace pinring
