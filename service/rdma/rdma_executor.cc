#include "service/rdma/rdma_executor.h"

#include <algorithm>
#include <cstring>
#include <span>

namespace pinring::ringd {
namespace {

// [off, off+len) inside `size` without overflow.
constexpr bool Inside(std::uint64_t off, std::uint64_t len, std::uint64_t size) {
  return off <= size && len <= size - off;
}

}  // namespace

CompletionStatus ValidateRdmaDescriptor(const Descriptor& d, RegionLookup& ops) {
  // Every field below is client-written and untrusted; the order of checks (and so the status
  // reported for a descriptor with several faults) follows the shm transport's validator.
  if (d.opcode >= kRdmaOpcodeCount) return CompletionStatus::kBadOpcode;
  // REMOTE ops carry the grant's node in reserved2 (ring_format.h); every other reserved field,
  // and reserved2 for the other opcodes, must stay zero.
  if (d.reserved0 != 0 || d.reserved1 != 0 || (d.reserved2 != 0 && !IsRemoteOpcode(d.opcode))) {
    return CompletionStatus::kBadReserved;
  }
  if ((d.flags & ~kDescFlagsKnown) != 0) return CompletionStatus::kBadFlags;
  const auto op = static_cast<Opcode>(d.opcode);
  if (IsRemoteOpcode(d.opcode)) {
    // No flag applies to a REMOTE op. Only the local side is checked here (the grant side is the
    // granting ringd's business, RemoteOps::Remote).
    if (d.flags != 0) return CompletionStatus::kBadFlags;
    const bool write = d.opcode == kOpRemoteWrite;
    const GrantedRegion* local = ops.Lookup(write ? d.src_region : d.dst_region);
    if (local == nullptr) return CompletionStatus::kUnknownRegion;
    if (!Inside(write ? d.src_offset : d.dst_offset, d.length, local->length)) {
      return CompletionStatus::kOutOfBounds;
    }
    // The grant side's bounds, for the same overflow-free arithmetic later.
    if (!Inside(write ? d.dst_offset : d.src_offset, d.length, ~std::uint64_t{0})) {
      return CompletionStatus::kOutOfBounds;
    }
    if (!write && !local->writable) return CompletionStatus::kReadOnlyRegion;
    return CompletionStatus::kOk;
  }
  if ((d.flags & kDescFlagFillPattern64) != 0 && op != Opcode::kFill) {
    return CompletionStatus::kBadFlags;
  }
  if (op == Opcode::kNop) return CompletionStatus::kOk;
  const bool has_src = op == Opcode::kCopy || op == Opcode::kChecksum;
  const bool has_dst = op == Opcode::kCopy || op == Opcode::kFill;
  const GrantedRegion* src = has_src ? ops.Lookup(d.src_region) : nullptr;
  const GrantedRegion* dst = has_dst ? ops.Lookup(d.dst_region) : nullptr;
  if ((has_src && src == nullptr) || (has_dst && dst == nullptr)) {
    return CompletionStatus::kUnknownRegion;
  }
  if (has_src && !Inside(d.src_offset, d.length, src->length)) {
    return CompletionStatus::kOutOfBounds;
  }
  if (has_dst && !Inside(d.dst_offset, d.length, dst->length)) {
    return CompletionStatus::kOutOfBounds;
  }
  if ((d.flags & kDescFlagFillPattern64) != 0 && (d.dst_offset % 8 != 0 || d.length % 8 != 0)) {
    return CompletionStatus::kMisaligned;
  }
  if (has_dst && !dst->writable) return CompletionStatus::kReadOnlyRegion;
  // Overlap is judged on the memory, not the handles: two grants may cover the same bytes of the
  // client's address space. Offsets are inside their grants (checked above) and a grant's
  // addr + length was bounded at registration, so these sums cannot overflow.
  if (op == Opcode::kCopy && d.length > 0) {
    const std::uint64_t s = src->addr + d.src_offset;
    const std::uint64_t t = dst->addr + d.dst_offset;
    if (s < t + d.length && t < s + d.length) return CompletionStatus::kOverlap;
  }
  return CompletionStatus::kOk;
}

rdma_async::Task<CompletionStatus> ExecuteOne(Descriptor d, RemoteOps& ops,
                                              std::uint64_t* result) {
  *result = 0;
  const CompletionStatus v = ValidateRdmaDescriptor(d, ops);
  if (v != CompletionStatus::kOk) co_return v;
  const auto op = static_cast<Opcode>(d.opcode);
  if (IsRemoteOpcode(d.opcode)) co_return co_await ops.Remote(d, result);
  // Validated: copy what we need now; the region table does not change during one descriptor.
  const GrantedRegion src = op == Opcode::kNop || op == Opcode::kFill ? GrantedRegion{}
                                                                      : *ops.Lookup(d.src_region);
  const GrantedRegion dst = op == Opcode::kNop || op == Opcode::kChecksum
                                ? GrantedRegion{}
                                : *ops.Lookup(d.dst_region);
  const std::uint32_t chunk_max = ops.bounce_size();
  std::byte* bounce = ops.bounce();
  switch (op) {
    case Opcode::kNop:
      co_return CompletionStatus::kOk;
    case Opcode::kChecksum: {
      std::uint64_t h = kFnv1a64Seed;
      for (std::uint64_t done = 0; done < d.length;) {
        const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_max, d.length - done));
        if (!(co_await ops.Read(src.addr + d.src_offset + done, src.rkey, n)).ok()) {
          co_return CompletionStatus::kDeviceError;
        }
        h = Fnv1a64(std::span<const std::byte>(bounce, n), h);
        done += n;
      }
      *result = h;
      co_return CompletionStatus::kOk;
    }
    case Opcode::kFill: {
      // The bounce buffer holds the pattern once; chunks are multiples of 8, so a 64-bit pattern
      // keeps its phase (dst_offset is 8-aligned for pattern fills).
      const std::uint32_t fill_len =
          static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_max, d.length));
      if ((d.flags & kDescFlagFillPattern64) != 0) {
        for (std::uint32_t i = 0; i + 8 <= fill_len; i += 8) std::memcpy(bounce + i, &d.value, 8);
      } else {
        std::memset(bounce, static_cast<int>(d.value & 0xff), fill_len);
      }
      for (std::uint64_t done = 0; done < d.length;) {
        const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(fill_len, d.length - done));
        if (!(co_await ops.Write(dst.addr + d.dst_offset + done, dst.rkey, n)).ok()) {
          co_return CompletionStatus::kDeviceError;
        }
        done += n;
      }
      *result = d.length;
      co_return CompletionStatus::kOk;
    }
    case Opcode::kCopy: {
      for (std::uint64_t done = 0; done < d.length;) {
        const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_max, d.length - done));
        if (!(co_await ops.Read(src.addr + d.src_offset + done, src.rkey, n)).ok() ||
            !(co_await ops.Write(dst.addr + d.dst_offset + done, dst.rkey, n)).ok()) {
          co_return CompletionStatus::kDeviceError;
        }
        done += n;
      }
      *result = d.length;
      co_return CompletionStatus::kOk;
    }
  }
  co_return CompletionStatus::kBadOpcode;
}

}  // namespace pinring::ringd
