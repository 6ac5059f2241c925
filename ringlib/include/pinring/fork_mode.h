// Fork-safety modes: what a registration does so that fork() cannot break what the device sees.
// See docs/fork-modes.md for the guarantee and cost of each.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pinring {

enum class ForkMode : std::uint8_t {
  // No precaution: rely on the kernel's copy-on-fork of pinned anonymous pages (Linux >= 5.9;
  // read-only pins reliable from 6.2). Cost: every fork() copies the pinned pages into the child.
  kKernel = 0,
  // MADV_DONTFORK on the registered range, as ibv_fork_init() does. The child has no mapping there.
  kDontFork = 1,
  // Device-read-only registration (no IBV_ACCESS_LOCAL_WRITE): the FOLL_FORCE-style read pin.
  kReadOnly = 2,
  // Register with write access although the device only reads, forcing an exclusive page at pin
  // time: the "FOLL_FORCE | FOLL_WRITE for read" workaround.
  kWriteForRead = 3,
  // The memory is a MAP_SHARED memfd: never COWed; a child sees and writes the same pages.
  kShared = 4,
  // On-demand paging (IBV_ACCESS_ON_DEMAND): nothing is pinned. The device faults pages in
  // through the kernel's mmu notifiers, so it follows the process's page tables: after fork()
  // the parent's COW copy is what the device sees, and the child's pages never are. Needs a
  // device and kernel with ODP for RC (rxe from Linux 6.13); elsewhere registration fails with
  // an error naming the modes to use instead, never a silent fallback to pinning.
  kOdp = 5,
};
inline constexpr std::uint8_t kForkModeCount = 6;

inline constexpr ForkMode kAllForkModes[] = {ForkMode::kKernel,       ForkMode::kDontFork,
                                             ForkMode::kReadOnly,     ForkMode::kWriteForRead,
                                             ForkMode::kShared,       ForkMode::kOdp};

// "kernel", "dontfork", "readonly", "write-for-read", "shared", "odp".
constexpr std::string_view ForkModeName(ForkMode m) {
  switch (m) {
    case ForkMode::kKernel: return "kernel";
    case ForkMode::kDontFork: return "dontfork";
    case ForkMode::kReadOnly: return "readonly";
    case ForkMode::kWriteForRead: return "write-for-read";
    case ForkMode::kShared: return "shared";
    case ForkMode::kOdp: return "odp";
  }
  return "unknown";
}

// Inverse of ForkModeName; nullopt for anything else.
constexpr std::optional<ForkMode> ParseForkMode(std::string_view name) {
  for (ForkMode m : kAllForkModes) {
    if (ForkModeName(m) == name) return m;
  }
  return std::nullopt;
}

// True when the device may only read memory registered under `m`.
constexpr bool ForkModeIsDeviceReadOnly(ForkMode m) { return m == ForkMode::kReadOnly; }

// True when a registration under `m` pins nothing (and is not charged to RLIMIT_MEMLOCK).
constexpr bool ForkModeIsOnDemand(ForkMode m) { return m == ForkMode::kOdp; }

}  // namespace pinring
