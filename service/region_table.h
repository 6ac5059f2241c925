// A client's registered regions as ringd knows them: ringd's own mapping, size and access, which
// is all a descriptor is ever checked against (the client cannot change any of it after
// registration).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "pinring/fork_mode.h"
#include "service/backend.h"
#include "service/unique_fd.h"
#include "service/untrusted_memfd.h"

namespace pinring::ringd {

struct Region {
  std::uint32_t handle = 0;
  std::uint64_t size = 0;
  ForkMode fork_mode = ForkMode::kKernel;
  bool device_writable = true;  // false: ForkMode::kReadOnly, never a COPY/FILL destination
  std::uint32_t flags = 0;      // wire::kRegion*
  std::byte* base = nullptr;    // == mapping.bytes(), kept for the hot path
  // Destruction order matters: the registration (pin) goes before the mapping it covers.
  // Members are destroyed in reverse order of declaration. (The memfd itself is closed once
  // mapped: the mapping keeps the memory, BackingId its identity.)
  ClientMapping mapping;
  std::unique_ptr<BackendMemory> backend_memory;

  std::uint64_t pinned_bytes() const {
    return backend_memory != nullptr ? backend_memory->pinned_bytes() : 0;
  }
  // The region's memory took a SIGBUS (FaultGuard): it is unusable, every op gets kRegionFault.
  bool faulted() const { return mapping.faulted(); }
};

// True when two regions may show the same memory: the same region, or two registrations of one
// memfd (the same BackingId; offsets within both are file offsets). A region without a known
// identity (ino 0: built in a test without a memfd) aliases only itself.
inline bool SameBacking(const Region& a, const Region& b) {
  return &a == &b || (a.mapping.backing().ino != 0 && a.mapping.backing() == b.mapping.backing());
}

// True when [a_off, a_off + len_a) of region a and [b_off, b_off + len_b) of region b are the
// same bytes somewhere. REQUIRES: both ranges inside their regions (so no sum overflows).
inline bool RangesAlias(const Region& a, std::uint64_t a_off, std::uint64_t a_len,
                        const Region& b, std::uint64_t b_off, std::uint64_t b_len) {
  return a_len != 0 && b_len != 0 && SameBacking(a, b) && a_off < b_off + b_len &&
         b_off < a_off + a_len;
}

// Thread-safety: the control thread inserts and removes under the writer lock; pollers hold the
// reader lock across a batch, so a region cannot disappear while a descriptor that names it runs.
class RegionTable {
 public:
  explicit RegionTable(std::uint32_t max_regions) : max_regions_(max_regions) {}

  // Assigns a handle (never 0, never reused within this client) and takes ownership.
  // ResourceExhausted naming --max_regions when full.
  absl::StatusOr<std::uint32_t> Insert(std::unique_ptr<Region> r) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes and returns the region (the caller destroys it, outside the lock if it likes).
  // NotFound for an unknown handle.
  absl::StatusOr<std::unique_ptr<Region>> Remove(std::uint32_t handle) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes everything (client teardown).
  std::vector<std::unique_ptr<Region>> RemoveAll() ABSL_LOCKS_EXCLUDED(mu_);

  // REQUIRES: mu() held (shared is enough). nullptr for unknown handles.
  const Region* FindLocked(std::uint32_t handle) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    auto it = regions_.find(handle);
    return it == regions_.end() ? nullptr : it->second.get();
  }
  template <typename F>
  void ForEachLocked(F f) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    for (const auto& [h, r] : regions_) f(*r);
  }
  std::size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex& mu() const ABSL_LOCK_RETURNED(mu_) { return mu_; }

 private:
  const std::uint32_t max_regions_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::uint32_t, std::unique_ptr<Region>> regions_ ABSL_GUARDED_BY(mu_);
  std::uint32_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace pinring::ringd
