#include "service/descriptor_validator.h"

#include "service/region_table.h"

namespace pinring::ringd {
namespace {

bool IsRemote(std::uint8_t opcode) { return opcode == kOpRemoteWrite || opcode == kOpRemoteRead; }

// [a_off, +len) of a and [b_off, +len) of b are the same bytes somewhere. REQUIRES: both ranges
// inside their regions; ringd bounded each region's backing_offset + size when it recorded it,
// so no sum overflows.
bool Alias(const RegionView& a, std::uint64_t a_off, const RegionView& b, std::uint64_t b_off,
           std::uint64_t len) {
  if (len == 0 || a.backing_hi != b.backing_hi || a.backing_lo != b.backing_lo) return false;
  const std::uint64_t s = a.backing_offset + a_off;
  const std::uint64_t t = b.backing_offset + b_off;
  return s < t + len && t < s + len;
}

}  // namespace

CompletionStatus ValidateDescriptor(const Descriptor& d, Transport t, RegionViewLookup lookup) {
  // Every field below is client-written and untrusted (ringd's private copy: it cannot change
  // under us).
  const bool rdma = t == Transport::kRdma;
  if (d.opcode >= (rdma ? kRdmaOpcodeCount : kOpcodeCount)) return CompletionStatus::kBadOpcode;
  const bool remote = IsRemote(d.opcode);
  // Reserved fields must be zero so they can gain meaning later without old ringds misreading;
  // a REMOTE op carries its grant's node in reserved2.
  if (d.reserved0 != 0 || d.reserved1 != 0 || (d.reserved2 != 0 && !remote)) {
    return CompletionStatus::kBadReserved;
  }
  if ((d.flags & ~kDescFlagsKnown) != 0) return CompletionStatus::kBadFlags;
  if (remote) {
    // No flag applies to a REMOTE op. Only the local side is checked here: the grant side is
    // the granting ringd's (service/rdma/remote_memory.cc).
    if (d.flags != 0) return CompletionStatus::kBadFlags;
    const bool write = d.opcode == kOpRemoteWrite;
    RegionView local;
    if (!lookup(write ? d.src_region : d.dst_region, &local)) {
      return CompletionStatus::kUnknownRegion;
    }
    if (!RangeInside(write ? d.src_offset : d.dst_offset, d.length, local.size)) {
      return CompletionStatus::kOutOfBounds;
    }
    // The grant side's offset + length must not overflow (its owner checks the bounds).
    if (!RangeInside(write ? d.dst_offset : d.src_offset, d.length, ~std::uint64_t{0})) {
      return CompletionStatus::kOutOfBounds;
    }
    if (!write && !local.writable) return CompletionStatus::kReadOnlyRegion;
    if (local.faulted) return CompletionStatus::kRegionFault;
    return CompletionStatus::kOk;
  }
  const auto op = static_cast<Opcode>(d.opcode);
  const bool pattern64 = (d.flags & kDescFlagFillPattern64) != 0;
  if (pattern64 && op != Opcode::kFill) return CompletionStatus::kBadFlags;
  const bool reads_src = op == Opcode::kCopy || op == Opcode::kChecksum;
  const bool writes_dst = op == Opcode::kCopy || op == Opcode::kFill;
  // Handles are looked up in ringd's table only: a handle of another client, a stale handle or a
  // made-up number all miss.
  RegionView src, dst;
  if (reads_src && !lookup(d.src_region, &src)) return CompletionStatus::kUnknownRegion;
  if (writes_dst && !lookup(d.dst_region, &dst)) return CompletionStatus::kUnknownRegion;
  // Bounds against ringd's recorded size, overflow-safe (offset + length may wrap 64 bits).
  if (reads_src && !RangeInside(d.src_offset, d.length, src.size)) {
    return CompletionStatus::kOutOfBounds;
  }
  if (writes_dst && !RangeInside(d.dst_offset, d.length, dst.size)) {
    return CompletionStatus::kOutOfBounds;
  }
  if (pattern64 && ((d.dst_offset | d.length) & 7) != 0) return CompletionStatus::kMisaligned;
  if (writes_dst && !dst.writable) return CompletionStatus::kReadOnlyRegion;
  // Overlap is a property of the memory, not of the handles: a client may register one memfd
  // twice (shm) or grant two overlapping ranges (rdma) and COPY between the two handles.
  if (op == Opcode::kCopy && Alias(src, d.src_offset, dst, d.dst_offset, d.length)) {
    return CompletionStatus::kOverlap;
  }
  // A region whose memory lost pages under ringd (FaultGuard) is never touched again.
  if ((reads_src && src.faulted) || (writes_dst && dst.faulted)) {
    return CompletionStatus::kRegionFault;
  }
  return CompletionStatus::kOk;
}

ValidatedOp ValidateShmDescriptor(const Descriptor& d,
                                  absl::FunctionRef<const Region*(std::uint32_t handle)> lookup) {
  ValidatedOp v;
  v.desc = d;
  const Region* src = nullptr;
  const Region* dst = nullptr;
  v.status = ValidateDescriptor(d, Transport::kShm, [&](std::uint32_t h, RegionView* out) {
    const Region* r = lookup(h);
    if (r == nullptr) return false;
    if (h == d.src_region) src = r;
    if (h == d.dst_region) dst = r;
    out->size = r->size;
    out->writable = r->device_writable;
    out->faulted = r->faulted();
    // The memfd's identity; a region without one (ino 0: built in a test without a memfd)
    // aliases only itself.
    const BackingId& b = r->mapping.backing();
    if (b.ino != 0) {
      out->backing_hi = static_cast<std::uint64_t>(b.dev);
      out->backing_lo = static_cast<std::uint64_t>(b.ino);
    } else {
      out->backing_hi = ~std::uint64_t{0};
      out->backing_lo = reinterpret_cast<std::uintptr_t>(r);
    }
    out->backing_offset = 0;  // every mapping starts at file offset 0
    return true;
  });
  if (v.status != CompletionStatus::kOk || d.opcode >= kOpcodeCount) return v;
  v.opcode = static_cast<Opcode>(d.opcode);
  const bool reads_src = v.opcode == Opcode::kCopy || v.opcode == Opcode::kChecksum;
  const bool writes_dst = v.opcode == Opcode::kCopy || v.opcode == Opcode::kFill;
  v.src = reads_src ? src : nullptr;
  v.dst = writes_dst ? dst : nullptr;
  return v;
}

}  // namespace pinring::ringd
