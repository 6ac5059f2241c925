// Detecting "this handle was inherited across fork()" without a syscall on the hot path.
//
// A pthread_atfork child handler (registered by the first Client::Connect) bumps a process-global
// generation counter in every forked child. Every ringlib handle records the generation it was
// created in; a handle whose generation differs from the current one belongs to an ancestor
// process and refuses to work (FailedPrecondition). This costs one relaxed load of a read-mostly
// cache line instead of a getpid() per call.
#pragma once

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "pinring/export.h"

namespace pinring::internal {

// Bumped once in each forked child, never otherwise. Defined in src/fork_generation.cc.
PINRING_EXPORT extern std::atomic<std::uint32_t> g_fork_generation;

// The current process's generation.
inline std::uint32_t CurrentForkGeneration() {
  // Relaxed: the counter is written only by the atfork child handler, which runs in the child
  // before fork() returns there, on the thread that later reads it (a forked child has one
  // thread). No other memory is published through it.
  return g_fork_generation.load(std::memory_order_relaxed);
}

// Installs the pthread_atfork child handler once per process. Thread-safe, idempotent.
PINRING_EXPORT void InstallForkHandler();

// The FailedPrecondition every inherited handle returns; `what` names the handle ("queue 3").
PINRING_EXPORT absl::Status InheritedAcrossForkError(const char* what);

}  // namespace pinring::internal
