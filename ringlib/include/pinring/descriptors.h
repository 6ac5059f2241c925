// Builders for the 64-byte descriptors of ring_format.h. Each returns a fully initialized
// descriptor (reserved fields zero, which ringd requires) that a caller may still adjust, e.g. by
// OR-ing kDescFlagFence into `flags`.
#pragma once

#include <cstdint>

#include "pinring/ring_format.h"

namespace pinring {

// The one builder: every field it is given, every reserved field zero (ringd requires it). The
// per-operation builders below name the fields of their operation. (The C API's
// pinring_make_descriptor, pinring.h, is the same for C.)
constexpr Descriptor MakeDescriptor(Opcode op, std::uint8_t flags, std::uint32_t src_region,
                                    std::uint64_t src_offset, std::uint32_t dst_region,
                                    std::uint64_t dst_offset, std::uint64_t length,
                                    std::uint64_t value, std::uint64_t user_data) {
  return Descriptor{user_data,  static_cast<std::uint8_t>(op), flags, /*reserved0=*/0,
                    src_region, dst_region, /*reserved1=*/0, src_offset, dst_offset, length,
                    value,      /*reserved2=*/0};
}

// A descriptor that does nothing; its completion has status kOk and result 0.
constexpr Descriptor MakeNop(std::uint64_t user_data = 0) {
  return MakeDescriptor(Opcode::kNop, 0, 0, 0, 0, 0, 0, 0, user_data);
}

// Copies src_region[src_offset, +length) to dst_region[dst_offset, +length). Region handles come
// from Region::handle(). ringd completes it with kOutOfBounds / kUnknownRegion / kOverlap /
// kReadOnlyRegion when the ranges are not acceptable; result = bytes copied on success.
constexpr Descriptor MakeCopy(std::uint32_t src_region, std::uint64_t src_offset,
                              std::uint32_t dst_region, std::uint64_t dst_offset,
                              std::uint64_t length, std::uint64_t user_data = 0) {
  return MakeDescriptor(Opcode::kCopy, 0, src_region, src_offset, dst_region, dst_offset, length,
                        0, user_data);
}

// Sets dst_region[dst_offset, +length) to `byte`; result = bytes written.
constexpr Descriptor MakeFill(std::uint32_t dst_region, std::uint64_t dst_offset,
                              std::uint64_t length, std::uint8_t byte,
                              std::uint64_t user_data = 0) {
  return MakeDescriptor(Opcode::kFill, 0, 0, 0, dst_region, dst_offset, length, byte, user_data);
}

// Fills with the 8-byte `pattern` (native byte order). REQUIRES for success: dst_offset and
// length are multiples of 8, otherwise the completion is kMisaligned.
constexpr Descriptor MakeFillPattern64(std::uint32_t dst_region, std::uint64_t dst_offset,
                                       std::uint64_t length, std::uint64_t pattern,
                                       std::uint64_t user_data = 0) {
  return MakeDescriptor(Opcode::kFill, kDescFlagFillPattern64, 0, 0, dst_region, dst_offset,
                        length, pattern, user_data);
}

// FNV-1a 64 of src_region[src_offset, +length) as the device sees it; result = the checksum,
// which a client can compare against Fnv1a64() of its own view of the bytes.
constexpr Descriptor MakeChecksum(std::uint32_t src_region, std::uint64_t src_offset,
                                  std::uint64_t length, std::uint64_t user_data = 0) {
  return MakeDescriptor(Opcode::kChecksum, 0, src_region, src_offset, 0, 0, length, 0, user_data);
}

}  // namespace pinring
