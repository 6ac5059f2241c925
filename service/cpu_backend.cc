// The cpu backend: ringd moves the bytes itself with memmove/memset. Nothing is pinned; this is
// the default when no RDMA device exists and the reference the verbs backend is tested against.
#include <cstring>
#include <span>

#include "service/backend.h"
#include "service/region_table.h"

namespace pinring::ringd {
namespace {

class CpuMemory final : public BackendMemory {
 public:
  std::uint64_t pinned_bytes() const override { return 0; }
};

class CpuBackend final : public Backend {
 public:
  absl::string_view name() const override { return "cpu"; }
  std::string device() const override { return ""; }
  std::uint64_t default_serve_budget() const override { return 4 * 1024; }

  // Nothing is pinned here whatever the mode: ringd's CPU reads and writes the client's pages
  // through its own mapping, so every mode (odp included) holds trivially.
  absl::StatusOr<std::unique_ptr<BackendMemory>> Register(void*, std::size_t, ForkMode) override {
    return std::make_unique<CpuMemory>();
  }

  OpResult Execute(const ValidatedOp& op) override {
    const Descriptor& d = op.desc;
    OpResult r{CompletionStatus::kOk, d.length};
    // Every access below may hit a hole the client punched into its memfd. The FaultGuard absorbs
    // the SIGBUS (the access then sees anonymous memory); faulted() afterwards tells us.
    switch (op.opcode) {
      case Opcode::kNop:
        return {};
      case Opcode::kCopy:
        // memmove: the validator refuses overlapping ranges even across aliased handles, but
        // memmove costs nothing extra and stays correct if that ever changes.
        std::memmove(op.dst->base + d.dst_offset, op.src->base + d.src_offset, d.length);
        break;
      case Opcode::kChecksum:
        r.result = Fnv1a64(std::span<const std::byte>(op.src->base + d.src_offset, d.length),
                           op.checksum_seed);
        break;
      case Opcode::kFill:
        FillPattern(std::span<std::byte>(op.dst->base + d.dst_offset, d.length), d.value,
                    (d.flags & kDescFlagFillPattern64) != 0);
        break;
      default:
        return {CompletionStatus::kBadOpcode, 0};
    }
    if ((op.src != nullptr && op.src->faulted()) || (op.dst != nullptr && op.dst->faulted())) {
      return {CompletionStatus::kRegionFault, 0};
    }
    return r;
  }
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend() { return std::make_unique<CpuBackend>(); }

}  // namespace pinring::ringd
