#include "service/descriptor_validator.h"

namespace pinring::ringd {

ValidatedOp ValidateDescriptor(const Descriptor& d, RegionLookup lookup) {
  ValidatedOp v;
  v.desc = d;
  auto fail = [&v](CompletionStatus s) {
    v.status = s;
    v.src = v.dst = nullptr;
    return v;
  };
  if (d.opcode >= kOpcodeCount) return fail(CompletionStatus::kBadOpcode);
  v.opcode = static_cast<Opcode>(d.opcode);
  // Reserved fields must be zero so they can gain meaning later without old ringds misreading.
  if (d.reserved0 != 0 || d.reserved1 != 0 || d.reserved2 != 0) {
    return fail(CompletionStatus::kBadReserved);
  }
  if ((d.flags & ~kDescFlagsKnown) != 0) return fail(CompletionStatus::kBadFlags);
  const bool pattern64 = (d.flags & kDescFlagFillPattern64) != 0;
  if (pattern64 && v.opcode != Opcode::kFill) return fail(CompletionStatus::kBadFlags);

  const bool reads_src = v.opcode == Opcode::kCopy || v.opcode == Opcode::kChecksum;
  const bool writes_dst = v.opcode == Opcode::kCopy || v.opcode == Opcode::kFill;
  // Handles are looked up in ringd's table only: a handle of another client, a stale handle or a
  // made-up number all miss.
  if (reads_src && (v.src = lookup(d.src_region)) == nullptr) {
    return fail(CompletionStatus::kUnknownRegion);
  }
  if (writes_dst && (v.dst = lookup(d.dst_region)) == nullptr) {
    return fail(CompletionStatus::kUnknownRegion);
  }
  // Bounds against ringd's recorded size, overflow-safe (offset + length may wrap 64 bits).
  if (reads_src && !RangeInside(d.src_offset, d.length, v.src->size)) {
    return fail(CompletionStatus::kOutOfBounds);
  }
  if (writes_dst && !RangeInside(d.dst_offset, d.length, v.dst->size)) {
    return fail(CompletionStatus::kOutOfBounds);
  }
  if (pattern64 && ((d.dst_offset | d.length) & 7) != 0) return fail(CompletionStatus::kMisaligned);
  if (writes_dst && !v.dst->device_writable) return fail(CompletionStatus::kReadOnlyRegion);
  // Overlap is a property of the memory, not of the handles: a client may register one memfd
  // twice and COPY between the two handles. Both ranges are inside their regions (checked above),
  // so RangesAlias's sums cannot overflow.
  if (v.opcode == Opcode::kCopy &&
      RangesAlias(*v.src, d.src_offset, d.length, *v.dst, d.dst_offset, d.length)) {
    return fail(CompletionStatus::kOverlap);
  }
  // A region whose memfd lost pages under ringd (FaultGuard) is never touched again.
  if ((reads_src && v.src->faulted()) || (writes_dst && v.dst->faulted())) {
    return fail(CompletionStatus::kRegionFault);
  }
  return v;
}

}  // namespace pinring::ringd
