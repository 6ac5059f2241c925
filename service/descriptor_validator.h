// Validation of one descriptor from a client's submission ring. A pure function of the descriptor
// (a private copy, taken with CopyOut before anything looks at it) and ringd's own table of the
// client's regions; it touches no client memory.
#pragma once

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "pinring/ring_format.h"
#include "service/region_table.h"

namespace pinring::ringd {

struct ValidatedOp {
  CompletionStatus status = CompletionStatus::kOk;  // kOk: safe to Execute
  Opcode opcode = Opcode::kNop;
  Descriptor desc{};             // the private copy that was validated
  const Region* src = nullptr;   // COPY, CHECKSUM
  const Region* dst = nullptr;   // COPY, FILL
  // CHECKSUM: the FNV-1a state to continue from. ringd splits a large descriptor into budgeted
  // slices (QueueServer); each slice continues the hash of the one before.
  std::uint64_t checksum_seed = kFnv1a64Seed;
};

using RegionLookup = absl::FunctionRef<const Region*(std::uint32_t handle)>;

// Checks, in this order (the first failure is the status): opcode (kBadOpcode), reserved fields
// (kBadReserved), flag bits (kBadFlags: unknown bits, or kDescFlagFillPattern64 on anything but
// FILL), region handles (kUnknownRegion), offset + length against ringd's recorded size with
// overflow checking (kOutOfBounds), 8-byte alignment of pattern fills (kMisaligned), device-
// writability of the destination (kReadOnlyRegion), for COPY overlap of source and destination
// in the backing memory, even through two handles of one memfd (kOverlap), and a region whose
// memory faulted earlier (kRegionFault). NOP ignores region and range fields.
ValidatedOp ValidateDescriptor(const Descriptor& d, RegionLookup lookup);

// True when [off, off+len) lies inside a region of `size` bytes, without overflow.
constexpr bool RangeInside(std::uint64_t off, std::uint64_t len, std::uint64_t size) {
  return off <= size && len <= size - off;
}

}  // namespace pinring::ringd
