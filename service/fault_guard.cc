#include "service/fault_guard.h"

#include <signal.h>
#include <sys/mman.h>

#include <cstring>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "pinring/status.h"

namespace pinring::ringd {
namespace {

// One watched range. Written by the control thread under g_mu; read by the signal handler,
// which can take no lock: every field is an atomic the handler loads on its own.
struct Slot {
  std::atomic<std::uintptr_t> start{0};  // 0: slot free
  std::atomic<std::uintptr_t> end{0};    // exclusive, rounded up to `page`
  std::atomic<std::uint32_t> faulted{0};
};

Slot g_slots[FaultGuard::kMaxWatched];
// Slots [0, g_high) may be in use: the handler scans only those.
std::atomic<std::size_t> g_high{0};
std::atomic<std::uint64_t> g_faults{0};
struct sigaction g_previous;
std::atomic<bool> g_installed{false};

absl::Mutex g_mu;
std::vector<int>& FreeSlots() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mu) {
  static auto* free_slots = new std::vector<int>();
  return *free_slots;
}

void OnSigbus(int sig, siginfo_t* info, void* ctx) {
  const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  const std::size_t high = g_high.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < high; ++i) {
    Slot& s = g_slots[i];
    const std::uintptr_t start = s.start.load(std::memory_order_acquire);
    if (start == 0 || addr < start || addr >= s.end.load(std::memory_order_relaxed)) continue;
    // A client's memory: swap the whole range for anonymous pages so the access that faulted
    // (and every later one) succeeds, and tell the toucher through `faulted`. mmap is a plain
    // system call, async-signal-safe. If it fails there is nothing better to do than crash.
    void* p = mmap(reinterpret_cast<void*>(start), s.end.load(std::memory_order_relaxed) - start,
                   PROT_READ | PROT_WRITE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) break;
    // Relaxed is enough for the faulting thread itself (program order); other threads read it
    // after synchronising with this one through ringd's own locks.
    s.faulted.store(1, std::memory_order_release);
    g_faults.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Not client memory: ringd's own fault. Put the previous disposition back and return; the
  // instruction faults again and the signal takes its normal course.
  sigaction(sig, &g_previous, nullptr);
  (void)ctx;
}

}  // namespace

absl::Status FaultGuard::InstallHandler() {
  absl::MutexLock l(&g_mu);
  if (g_installed.load(std::memory_order_relaxed)) return absl::OkStatus();
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &g_previous) != 0) return pinring::LastErrnoStatus("sigaction(SIGBUS)");
  g_installed.store(true, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<FaultGuard> FaultGuard::Watch(void* addr, std::size_t len, std::size_t page) {
  PINRING_RETURN_IF_ERROR(InstallHandler());
  if (page == 0 || (page & (page - 1)) != 0) page = 4096;
  const auto start = reinterpret_cast<std::uintptr_t>(addr);
  const std::uintptr_t end = start + (len + page - 1) / page * page;
  absl::MutexLock l(&g_mu);
  int slot;
  if (!FreeSlots().empty()) {
    slot = FreeSlots().back();
    FreeSlots().pop_back();
  } else {
    const std::size_t high = g_high.load(std::memory_order_relaxed);
    if (high == kMaxWatched) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "ringd already watches ", kMaxWatched,
          " client mappings (queues and regions of every client): lower --max_connections, "
          "--max_queues or --max_regions"));
    }
    slot = static_cast<int>(high);
  }
  Slot& s = g_slots[slot];
  s.faulted.store(0, std::memory_order_relaxed);
  s.end.store(end, std::memory_order_relaxed);
  // Release: the handler that sees `start` also sees `end`.
  s.start.store(start, std::memory_order_release);
  if (static_cast<std::size_t>(slot) >= g_high.load(std::memory_order_relaxed)) {
    g_high.store(static_cast<std::size_t>(slot) + 1, std::memory_order_release);
  }
  return FaultGuard(slot);
}

void FaultGuard::Release() {
  if (slot_ < 0) return;
  absl::MutexLock l(&g_mu);
  g_slots[slot_].start.store(0, std::memory_order_release);
  FreeSlots().push_back(slot_);
  slot_ = -1;
}

FaultGuard::~FaultGuard() { Release(); }

FaultGuard::FaultGuard(FaultGuard&& o) noexcept : slot_(std::exchange(o.slot_, -1)) {}

FaultGuard& FaultGuard::operator=(FaultGuard&& o) noexcept {
  if (this != &o) {
    Release();
    slot_ = std::exchange(o.slot_, -1);
  }
  return *this;
}

bool FaultGuard::faulted() const {
  // Acquire pairs with the handler's release store (a fault taken on another thread).
  return slot_ >= 0 && g_slots[slot_].faulted.load(std::memory_order_acquire) != 0;
}

std::uint64_t FaultGuard::faults_absorbed() { return g_faults.load(std::memory_order_relaxed); }

}  // namespace pinring::ringd
