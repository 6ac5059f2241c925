// The `rdma` transport: a queue whose rings live in the client's own pinned memory, served by a
// ringd (same host or another) over one RC QP. The seed's ring-to-device scheme over a real NIC:
//
//   ring = mmap(); ibv_reg_mr(ring); ring[tail] = descriptor; doorbell(tail)
//   ringd: RDMA READ ring[head..tail) -> execute -> RDMA WRITE_WITH_IMM completions (imm: cq tail)
//
// A batch of at most max_inline_descriptors travels inline in the doorbell too, and ringd skips
// the READ: two device operations per round trip.
//
// The client opens the device itself (through librdmacm's route to ringd's address), registers
// its submission ring, completion ring and data regions with ibv_reg_mr under the fork-safety mode
// it chose (PrivateRegion), and connects. Contract details: wire/rdma_wire.h and
// docs/rdma-transport.md.
//
// Thread safety: an RdmaQueue is used by one thread at a time. Memory: every RdmaRegion is owned by
// its queue and dies with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "pinring/fork_mode.h"
#include "pinring/grant_token.h"
#include "pinring/ring_format.h"
#include "pinring/export.h"
#include "pinring/wire_types.h"

namespace pinring {

class PrivateRegion;
class VerbsDevice;
class MemoryRegion;
namespace rdma {
class RdmaChannel;
}

struct RdmaQueueOptions {
  std::string address;  // ringd's IPv4 address or host name (its RDMA-capable interface)
  std::uint16_t port = 18515;  // ringd --rdma_port (rdma::kDefaultRdmaPort)
  std::uint32_t sq_entries = 64;  // power of two, kMinRingEntries..kMaxRingEntries
  std::uint32_t cq_entries = 0;   // 0 = sq_entries; must be >= sq_entries
  // Fork-safety mode of the rings (and the default of regions). The completion ring and the
  // control buffers are written by the device: under kReadOnly they are registered kKernel.
  ForkMode fork_mode = ForkMode::kKernel;
  // kSpin: Reap polls the CQ; kBlock: Reap sleeps on the completion channel.
  wire::CompletionWait completion_wait = wire::CompletionWait::kSpin;
  absl::Duration timeout = absl::Seconds(15);  // connect and control round trips
  // A Submit of at most this many descriptors (capped at 32, rdma::kMaxInlineDescriptors) also
  // carries them in its doorbell SEND, so ringd need not RDMA READ them from the SQ ring: one
  // device operation less per batch. 0: every batch is pulled (the READ path). The descriptors
  // are written to the SQ ring either way.
  std::uint32_t max_inline_descriptors = 8;
};

// A data region: the client's private memory registered under a fork mode, granted a handle by
// ringd. Use handle() in Descriptor::src_region / dst_region.
class PINRING_EXPORT RdmaRegion {
 public:
  std::byte* data() const;
  std::size_t size() const { return size_; }
  std::span<std::byte> bytes() const { return {data(), size_}; }
  std::uint32_t handle() const { return handle_; }
  ForkMode mode() const;

 private:
  friend class RdmaQueue;
  std::unique_ptr<PrivateRegion> mem_;
  std::size_t size_ = 0;
  std::uint32_t handle_ = 0;
  bool mr_revoked_ = false;  // RevokeRegionMrForTesting: the MR is gone, leak the PrivateRegion
};

class PINRING_EXPORT RdmaQueue {
 public:
  // Resolves `address`, opens the device the route uses, maps + registers the rings under
  // opts.fork_mode, connects. InvalidArgument for bad sizes; Unavailable when ringd cannot be
  // reached or rejects (the message carries ringd's reason); DeadlineExceeded on timeout;
  // ResourceExhausted when RLIMIT_MEMLOCK is too small.
  static absl::StatusOr<std::unique_ptr<RdmaQueue>> Connect(const RdmaQueueOptions& opts);
  ~RdmaQueue();
  RdmaQueue(const RdmaQueue&) = delete;
  RdmaQueue& operator=(const RdmaQueue&) = delete;

  // Maps `size` bytes under `mode` (default: the queue's), registers them (REMOTE_READ, plus
  // REMOTE_WRITE unless the mode is kReadOnly) and asks ringd for a handle.
  absl::StatusOr<RdmaRegion*> CreateRegion(std::size_t size,
                                           std::optional<ForkMode> mode = std::nullopt);
  // Revokes the grant in ringd (later descriptors naming it complete kUnknownRegion), then
  // deregisters and unmaps. The region pointer is invalid afterwards.
  absl::Status DestroyRegion(RdmaRegion* region);

  // Asks ringd to export `region` as a grant: any client holding the token (of this ringd or,
  // through ringd peering, of another) may REMOTE_WRITE / REMOTE_READ it until RevokeGrant,
  // DestroyRegion or the end of this connection. Writes need a device-writable region.
  absl::StatusOr<rdma::GrantToken> ExportRegion(RdmaRegion* region);
  // Revokes a grant this queue exported: later REMOTE ops naming it complete kUnknownRegion.
  absl::Status RevokeGrant(const rdma::GrantToken& token);

  // Writes `descs` into the submission ring and rings the doorbell once.
  // ResourceExhausted when fewer than descs.size() slots are free (Reap first); the connection's
  // error once it has failed.
  absl::Status Submit(absl::Span<const Descriptor> descs);
  // Copies up to out.size() completions, waiting up to `timeout` for the first (per the queue's
  // completion_wait). Returns how many (0 on timeout). A zero timeout still polls what already
  // arrived. The connection's error once it failed and nothing is left to reap.
  absl::StatusOr<std::size_t> Reap(absl::Span<Completion> out, absl::Duration timeout);
  // Submit one, reap one. REQUIRES: nothing else in flight.
  absl::StatusOr<Completion> SubmitAndWait(const Descriptor& d, absl::Duration timeout);

  std::uint32_t in_flight() const { return sq_tail_ - cq_head_; }
  std::uint32_t sq_entries() const { return sq_entries_; }
  // OK while connected; ringd's reason (kError) or the transport failure afterwards.
  absl::Status error() const { return error_; }
  std::uint32_t connection_id() const { return connection_id_; }
  const std::string& device_name() const;

  // --- testing hooks: they break the protocol on purpose ------------------------------------
  Descriptor* SqSlotForTesting(std::uint32_t index);
  // Sends a doorbell carrying `tail` without writing anything and without accounting.
  absl::Status RingDoorbellForTesting(std::uint32_t tail);
  // Sends `bytes` (at most one request slot, rdma::kRequestSlotBytes) as one SEND.
  absl::Status SendRawForTesting(absl::Span<const std::byte> bytes);
  // Posts a zero-length RDMA WRITE_WITH_IMM to ringd (which accepts only SENDs).
  absl::Status WriteWithImmForTesting();
  // ibv_dereg_mr of the submission and completion rings while ringd still uses them.
  absl::Status DeregisterRingsForTesting();
  // ibv_dereg_mr of a region's MR without telling ringd: its rkey is revoked under ringd's grant.
  absl::Status RevokeRegionMrForTesting(RdmaRegion* region);
  // Advances the local tail as if `n` descriptors had been written (SqSlotForTesting) and
  // submitted with RingDoorbellForTesting.
  void AdvanceTailForTesting(std::uint32_t n) { sq_tail_ += n; }
  std::uint32_t sq_tail() const { return sq_tail_; }

 private:
  RdmaQueue() = default;
  // Sends a ControlMessage from a free send slot (waiting up to opts.timeout for one).
  absl::Status SendControl(const void* msg);
  // Sends `bytes` built in place by fill(slot) (a ControlMessage, maybe followed by inline
  // descriptors) from a free send slot, waiting as SendControl does.
  template <typename Fill>
  absl::Status SendBuilt(std::size_t bytes, Fill fill);
  // A send slot's bytes.
  std::byte* SendSlot(std::uint32_t i) const;
  // Polls the CQ once; with `check_cm`, also the rdma_cm channel for a disconnect when the CQ
  // was empty (a system call: spinning callers do it only now and then).
  absl::Status PollOnce(bool* progressed, bool check_cm);
  absl::Status WaitForProgress(absl::Duration timeout);
  absl::Status HandleReceive(std::uint32_t slot, std::uint32_t len);
  // A completion notification: ringd's WRITE_WITH_IMM into `slot` carried the new cq tail.
  absl::Status HandleCompletions(std::uint32_t slot, std::uint32_t tail);
  void Fail(absl::Status s);

  RdmaQueueOptions opts_;
  std::uint32_t sq_entries_ = 0, cq_entries_ = 0;
  std::uint32_t recv_depth_ = 0, send_slots_ = 0;
  // Declaration order is destruction order reversed; the destructor tears down explicitly:
  // QP + CQ, then MRs (rings, regions, control), then the PD, then the cm_id.
  std::unique_ptr<rdma::RdmaChannel> channel_;
  std::unique_ptr<VerbsDevice> device_;
  std::unique_ptr<PrivateRegion> sq_, cq_, ctl_;
  std::vector<std::unique_ptr<RdmaRegion>> regions_;

  std::uint32_t sq_tail_ = 0;      // next slot the client fills
  std::uint32_t cq_head_ = 0;      // next completion the client reads
  std::uint32_t cq_tail_seen_ = 0;  // from ringd's WRITE_WITH_IMM (bounded: HandleCompletions)
  std::vector<bool> send_busy_;
  std::uint32_t seq_ = 1;
  // The last control reply (kRegisterRegionReply / kDeregisterRegionReply).
  std::uint32_t reply_seq_ = 0;
  std::int32_t reply_code_ = 0;
  std::uint32_t reply_handle_ = 0;
  std::uint64_t reply_value_ = 0;
  std::uint64_t reply_addr_ = 0;
  std::uint32_t connection_id_ = 0;
  absl::Status error_;
  bool rings_deregistered_ = false;
};

// A REMOTE_WRITE of local src_region[src_offset, +length) into the grant at dst_offset.
PINRING_EXPORT Descriptor RemoteWriteDescriptor(const rdma::GrantToken& dst, std::uint64_t dst_offset,
                                 std::uint32_t src_region, std::uint64_t src_offset,
                                 std::uint64_t length, std::uint64_t user_data);
// A REMOTE_READ of the grant's [src_offset, +length) into local dst_region at dst_offset.
PINRING_EXPORT Descriptor RemoteReadDescriptor(const rdma::GrantToken& src, std::uint64_t src_offset,
                                std::uint32_t dst_region, std::uint64_t dst_offset,
                                std::uint64_t length, std::uint64_t user_data);
// "node:handle:key" in hex, and back (InvalidArgument on anything else).
PINRING_EXPORT std::string FormatGrantToken(const rdma::GrantToken& t);
PINRING_EXPORT absl::StatusOr<rdma::GrantToken> ParseGrantToken(absl::string_view text);

}  // namespace pinring
