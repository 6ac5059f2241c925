#include "pinring/fork_generation.h"

#include <pthread.h>

#include <mutex>

#include "absl/strings/str_cat.h"

namespace pinring::internal {

std::atomic<std::uint32_t> g_fork_generation{0};

namespace {
void BumpGenerationInChild() {
  // Runs in the child, single-threaded, before fork() returns there. Relaxed is enough: see
  // CurrentForkGeneration().
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

void InstallForkHandler() {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, &BumpGenerationInChild); });
}

absl::Status InheritedAcrossForkError(const char* what) {
  return absl::FailedPreconditionError(absl::StrCat(
      what, " was created before fork(): a forked child cannot use its parent's ringlib handles "
            "(the rings are not mapped in the child and ringd serves the parent); create a new "
            "pinring::Client in the child"));
}

}  // namespace pinring::internal
