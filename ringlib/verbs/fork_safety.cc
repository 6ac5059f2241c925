#include "verbs/fork_safety.h"

#include <infiniband/verbs.h>

#include "verbs/dontfork_ranges.h"

namespace pinring::internal {

absl::Status ApplyForkSafety(void* addr, std::size_t len, ForkMode mode) {
  if (addr == nullptr && len != 0) return absl::InvalidArgumentError("ApplyForkSafety: null addr");
  switch (mode) {
    case ForkMode::kDontFork:
      return DontForkTracker::Global().Add(addr, len);
    case ForkMode::kKernel:
    case ForkMode::kReadOnly:
    case ForkMode::kWriteForRead:
    case ForkMode::kShared:
    case ForkMode::kOdp:  // nothing is pinned: the device follows the page tables
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("ApplyForkSafety: bad ForkMode");
}

void ReleaseForkSafety(void* addr, std::size_t len, ForkMode mode) {
  if (mode == ForkMode::kDontFork) (void)DontForkTracker::Global().Remove(addr, len);
}

int RegistrationAccessFor(ForkMode mode, bool device_writes) {
  switch (mode) {
    case ForkMode::kReadOnly:
      return device_writes ? -1 : IBV_ACCESS_REMOTE_READ;
    case ForkMode::kWriteForRead:
      return IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
    case ForkMode::kOdp:
      return IBV_ACCESS_ON_DEMAND | IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
             (device_writes ? IBV_ACCESS_REMOTE_WRITE : 0);
    case ForkMode::kKernel:
    case ForkMode::kDontFork:
    case ForkMode::kShared:
      return IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
             (device_writes ? IBV_ACCESS_REMOTE_WRITE : 0);
  }
  return -1;
}

}  // namespace pinring::internal
