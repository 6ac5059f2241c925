// The descriptor contract, once for both transports: validation of one descriptor a client wrote.
// A pure function of the descriptor (ringd's private copy, taken before anything looks at it) and
// of ringd's own view of the client's regions; it touches no client memory.
//
// The shm transport (QueueServer) and the rdma transport (service/rdma/rdma_executor.cc) both call
// ValidateDescriptor with their transport's opcode set and a lookup that turns a region handle
// into a RegionView; each wraps the verdict in what its executor needs (ValidatedOp, backend.h,
// for the shm backends).
#pragma once

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "pinring/ring_format.h"
#include "service/backend.h"

namespace pinring::ringd {

// What validation knows of one region: ringd's record, never the client's claim of the moment.
struct RegionView {
  std::uint64_t size = 0;
  bool writable = false;  // the device may write it (not ForkMode::kReadOnly / not read-only MR)
  bool faulted = false;   // its memory took a SIGBUS under ringd (FaultGuard)
  // Which memory the region is: two views with the same `backing` show the same bytes, region
  // offset x being byte `backing_offset + x` of that memory. shm transport: the memfd's identity
  // (offsets are file offsets); rdma transport: the client's address space (offsets from addr).
  std::uint64_t backing_hi = 0, backing_lo = 0;
  std::uint64_t backing_offset = 0;
};

enum class Transport : std::uint8_t {
  kShm,   // opcodes < kOpcodeCount; every reserved field zero
  kRdma,  // also REMOTE_WRITE / REMOTE_READ, whose grant node is in reserved2 (ring_format.h)
};

// Fills *out and returns true when `handle` names one of the client's regions.
using RegionViewLookup = absl::FunctionRef<bool(std::uint32_t handle, RegionView* out)>;

// Checks, in this order (the first failure is the status): opcode for the transport
// (kBadOpcode), reserved fields (kBadReserved), flag bits (kBadFlags: unknown bits, any flag on a
// REMOTE op, kDescFlagFillPattern64 on anything but FILL), region handles (kUnknownRegion),
// offset + length against ringd's recorded size with overflow checking (kOutOfBounds; for a
// REMOTE op the grant side only for overflow, its owner checks the rest), 8-byte alignment of
// pattern fills (kMisaligned), device-writability of the destination (kReadOnlyRegion), for COPY
// overlap of source and destination in the backing memory, even through two handles of one
// memory (kOverlap), and a region whose memory faulted earlier (kRegionFault). NOP ignores region
// and range fields.
CompletionStatus ValidateDescriptor(const Descriptor& d, Transport t, RegionViewLookup lookup);

// The shm transport's form: the verdict plus the regions its backends execute against.
// `lookup` returns ringd's Region for a handle, or nullptr.
ValidatedOp ValidateShmDescriptor(const Descriptor& d,
                                  absl::FunctionRef<const Region*(std::uint32_t handle)> lookup);

// The validation fast path: true when `d` is a NOP that ValidateDescriptor accepts for either
// transport (no reserved field set, no flag but kDescFlagFence), decided from the descriptor
// alone with no lookup and no call. A false answer means nothing: run the full validator.
// (The descriptor fuzzer checks that the two always agree.)
inline bool IsValidNop(const Descriptor& d) {
  // Untrusted fields, from ringd's private copy: every one that ValidateDescriptor checks for a
  // NOP is checked here too, in one branch.
  return d.opcode == static_cast<std::uint8_t>(Opcode::kNop) &&
         (d.flags & ~kDescFlagFence) == 0 && (d.reserved0 | d.reserved1 | d.reserved2) == 0;
}

// True when [off, off+len) lies inside a region of `size` bytes, without overflow.
constexpr bool RangeInside(std::uint64_t off, std::uint64_t len, std::uint64_t size) {
  return off <= size && len <= size - off;
}

}  // namespace pinring::ringd
