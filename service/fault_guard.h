// Absorbing SIGBUS in client memory. A client can make memory it shares with ringd unreadable
// after registration: F_SEAL_SHRINK forbids ftruncate, but not fallocate(FALLOC_FL_PUNCH_HOLE).
// Touching a hole of an MFD_HUGETLB memfd when no free huge page is left raises SIGBUS in the
// toucher, here ringd (a memory error does the same on any memfd). No check made before an access
// can prevent it (the client punches after the check), so ringd takes the fault instead:
//
//  - Every mapping of client memory is watched (FaultGuard::Watch).
//  - ringd's SIGBUS handler finds the watched range holding the faulting address, replaces the
//    whole range with anonymous memory (one mmap(MAP_FIXED), async-signal-safe), marks it faulted
//    and returns. The faulting instruction then re-runs against the anonymous pages and succeeds.
//  - The code that touched the range checks faulted() afterwards and reports kRegionFault (a
//    region) or kQueueMemoryFault (a queue); the range is never used for client data again.
//
// A SIGBUS outside every watched range is ringd's own bug: the handler restores the previous
// disposition and returns, so the re-raised fault crashes (and dumps core) as it would have.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pinring::ringd {

class FaultGuard {
 public:
  // Most client mappings watched at once (every queue and region of every client).
  static constexpr std::size_t kMaxWatched = 1u << 16;

  // Installs the process-wide SIGBUS handler. Idempotent; call before any client memory is
  // touched (Watch calls it too).
  static absl::Status InstallHandler();

  // Watches [addr, addr + len). `page` is the mapping's page size (the huge page size for a
  // hugetlbfs memfd), so the replacement covers whole pages. ResourceExhausted when kMaxWatched
  // ranges are already watched.
  static absl::StatusOr<FaultGuard> Watch(void* addr, std::size_t len, std::size_t page);

  FaultGuard() = default;
  ~FaultGuard();  // stops watching; REQUIRES: no thread touches the range any more
  FaultGuard(FaultGuard&& o) noexcept;
  FaultGuard& operator=(FaultGuard&& o) noexcept;
  FaultGuard(const FaultGuard&) = delete;
  FaultGuard& operator=(const FaultGuard&) = delete;

  // True once a SIGBUS hit the range (its contents are then anonymous memory, not the client's).
  bool faulted() const;

  // Faults absorbed since start, in every range (a statistic).
  static std::uint64_t faults_absorbed();

 private:
  explicit FaultGuard(int slot) : slot_(slot) {}
  void Release();
  int slot_ = -1;
};

}  // namespace pinring::ringd
