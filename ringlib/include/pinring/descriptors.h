// Builders for the 64-byte descriptors of ring_format.h. Each returns a fully initialized
// descriptor (reserved fields zero, which ringd requires) that a caller may still adjust, e.g. by
// OR-ing kDescFlagFence into `flags`.
#pragma once

#include <cstdint>

#include "pinring/ring_format.h"

namespace pinring {

// A descriptor that does nothing; its completion has status kOk and result 0.
constexpr Descriptor MakeNop(std::uint64_t user_data = 0) {
  Descriptor d{};
  d.user_data = user_data;
  d.opcode = static_cast<std::uint8_t>(Opcode::kNop);
  return d;
}

// Copies src_region[src_offset, +length) to dst_region[dst_offset, +length). Region handles come
// from Region::handle(). ringd completes it with kOutOfBounds / kUnknownRegion / kOverlap /
// kReadOnlyRegion when the ranges are not acceptable; result = bytes copied on success.
constexpr Descriptor MakeCopy(std::uint32_t src_region, std::uint64_t src_offset,
                              std::uint32_t dst_region, std::uint64_t dst_offset,
                              std::uint64_t length, std::uint64_t user_data = 0) {
  Descriptor d{};
  d.user_data = user_data;
  d.opcode = static_cast<std::uint8_t>(Opcode::kCopy);
  d.src_region = src_region;
  d.src_offset = src_offset;
  d.dst_region = dst_region;
  d.dst_offset = dst_offset;
  d.length = length;
  return d;
}

// Sets dst_region[dst_offset, +length) to `byte`; result = bytes written.
constexpr Descriptor MakeFill(std::uint32_t dst_region, std::uint64_t dst_offset,
                              std::uint64_t length, std::uint8_t byte,
                              std::uint64_t user_data = 0) {
  Descriptor d{};
  d.user_data = user_data;
  d.opcode = static_cast<std::uint8_t>(Opcode::kFill);
  d.dst_region = dst_region;
  d.dst_offset = dst_offset;
  d.length = length;
  d.value = byte;
  return d;
}

// Fills with the 8-byte `pattern` (native byte order). REQUIRES for success: dst_offset and
// length are multiples of 8, otherwise the completion is kMisaligned.
constexpr Descriptor MakeFillPattern64(std::uint32_t dst_region, std::uint64_t dst_offset,
                                       std::uint64_t length, std::uint64_t pattern,
                                       std::uint64_t user_data = 0) {
  Descriptor d = MakeFill(dst_region, dst_offset, length, 0, user_data);
  d.flags = kDescFlagFillPattern64;
  d.value = pattern;
  return d;
}

// FNV-1a 64 of src_region[src_offset, +length) as the device sees it; result = the checksum,
// which a client can compare against Fnv1a64() of its own view of the bytes.
constexpr Descriptor MakeChecksum(std::uint32_t src_region, std::uint64_t src_offset,
                                  std::uint64_t length, std::uint64_t user_data = 0) {
  Descriptor d{};
  d.user_data = user_data;
  d.opcode = static_cast<std::uint8_t>(Opcode::kChecksum);
  d.src_region = src_region;
  d.src_offset = src_offset;
  d.length = length;
  return d;
}

}  // namespace pinring
