// Page-granular, refcounted tracking of MADV_DONTFORK ranges.
//
// Several registrations may cover the same pages (a ring and a region carved from one mapping, or
// the same buffer registered twice). madvise(MADV_DONTFORK) is idempotent, but MADV_DOFORK is not
// "undo mine": it clears the flag for everyone. So each page carries a refcount, the range is
// marked DONTFORK when a page's count goes 0 -> 1 and DOFORK only when it drops back to 0, as
// libibverbs does in its ibv_fork_init() range tree (libibverbs/memory.c).
//
// DontForkRanges is the pure bookkeeping (no syscalls; unit-tested). DontForkTracker applies the
// transitions with madvise() under a mutex; one process-wide instance backs ApplyForkSafety().
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace pinring::internal {

// A half-open page-aligned address range [begin, end).
struct PageRange {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
  std::size_t size() const { return end - begin; }
  friend bool operator==(const PageRange&, const PageRange&) = default;
};

// One maximal run of pages that share a refcount (as reported by Segments()).
struct RefSegment {
  PageRange range;
  std::uint32_t refs = 0;
  friend bool operator==(const RefSegment&, const RefSegment&) = default;
};

// Pure bookkeeping: which pages are covered how many times. Not thread-safe.
class DontForkRanges {
 public:
  explicit DontForkRanges(std::size_t page_size);

  // Widens [addr, addr+len) to whole pages (down/up to page_size).
  PageRange PageAlign(std::uintptr_t addr, std::size_t len) const;

  // Adds one reference to every page of [addr, addr+len). Returns the maximal ranges whose pages
  // went 0 -> 1 (the ones that now need MADV_DONTFORK), sorted, coalesced. len == 0: no-op.
  std::vector<PageRange> Add(std::uintptr_t addr, std::size_t len);

  // Drops one reference from every page of [addr, addr+len). Returns the maximal ranges whose
  // pages went 1 -> 0 (the ones that now need MADV_DOFORK). If any page of the range is not
  // tracked, returns FailedPrecondition and changes nothing.
  absl::Status Remove(std::uintptr_t addr, std::size_t len, std::vector<PageRange>* released);

  // Refcount of the page containing addr (0 when untracked).
  std::uint32_t RefsAt(std::uintptr_t addr) const;

  // Every tracked run, sorted, adjacent runs with equal counts merged.
  std::vector<RefSegment> Segments() const;

  bool empty() const { return segs_.empty(); }
  std::size_t page_size() const { return page_size_; }

 private:
  // Makes `at` a segment boundary (splits the segment containing it).
  void SplitAt(std::uintptr_t at);
  // Merges equal-count neighbours in [begin, end] so segs_ stays canonical.
  void Coalesce(std::uintptr_t begin, std::uintptr_t end);

  struct Seg {
    std::uintptr_t end;
    std::uint32_t refs;
  };
  std::size_t page_size_;
  std::map<std::uintptr_t, Seg> segs_;  // key: begin; disjoint; refs >= 1
};

// DontForkRanges plus the madvise() calls, thread-safe.
class DontForkTracker {
 public:
  DontForkTracker();

  // The process-wide tracker used by ApplyForkSafety(). Never destroyed.
  static DontForkTracker& Global();

  // MADV_DONTFORK on the pages that were not yet covered. On madvise failure nothing stays
  // recorded and the pages marked by this call are reverted; returns the errno status.
  absl::Status Add(void* addr, std::size_t len);

  // Drops the references; MADV_DOFORK on pages whose count reached 0. FailedPrecondition if the
  // range was not added. A DOFORK failure (e.g. the range was already unmapped: ENOMEM) is
  // returned, but the bookkeeping is still released.
  absl::Status Remove(void* addr, std::size_t len);

  std::vector<RefSegment> Segments() const;

 private:
  mutable absl::Mutex mu_;
  DontForkRanges ranges_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pinring::internal
