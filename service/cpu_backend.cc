// The cpu backend: ringd moves the bytes itself with memmove/memset. Nothing is pinned; this is
// the default when no RDMA device exists and the reference the verbs backend is tested against.
#include <cstring>
#include <span>

#include "service/backend.h"
#include "service/descriptor_validator.h"

namespace pinring::ringd {
namespace {

class CpuMemory final : public BackendMemory {
 public:
  std::uint64_t pinned_bytes() const override { return 0; }
};

// Writes the FILL value over [p, p+len): one byte, or the 8-byte little-endian pattern (the
// validator guarantees 8-byte aligned offset and length for patterns).
void FillBytes(std::byte* p, std::uint64_t len, std::uint64_t value, bool pattern64) {
  if (!pattern64) {
    std::memset(p, static_cast<int>(value & 0xff), len);
    return;
  }
  for (std::uint64_t i = 0; i < len; i += 8) std::memcpy(p + i, &value, 8);
}

class CpuBackend final : public Backend {
 public:
  absl::string_view name() const override { return "cpu"; }
  std::string device() const override { return ""; }

  absl::StatusOr<std::unique_ptr<BackendMemory>> Register(void*, std::size_t, bool) override {
    return std::make_unique<CpuMemory>();
  }

  OpResult Execute(const ValidatedOp& op) override {
    const Descriptor& d = op.desc;
    switch (op.opcode) {
      case Opcode::kNop:
        return {};
      case Opcode::kCopy:
        // memmove: two handles may map the same memfd, so ranges in different regions can still
        // alias; memmove is correct for any overlap.
        std::memmove(op.dst->base + d.dst_offset, op.src->base + d.src_offset, d.length);
        return {CompletionStatus::kOk, d.length};
      case Opcode::kChecksum:
        return {CompletionStatus::kOk,
                Fnv1a64(std::span<const std::byte>(op.src->base + d.src_offset, d.length))};
      case Opcode::kFill:
        FillBytes(op.dst->base + d.dst_offset, d.length, d.value,
                  (d.flags & kDescFlagFillPattern64) != 0);
        return {CompletionStatus::kOk, d.length};
    }
    return {CompletionStatus::kBadOpcode, 0};
  }
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend() { return std::make_unique<CpuBackend>(); }

}  // namespace pinring::ringd
