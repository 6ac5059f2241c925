#include "verbs/dontfork_ranges.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pinring/status.h"

namespace pinring::internal {
namespace {

void AppendCoalesced(std::vector<PageRange>* out, std::uintptr_t b, std::uintptr_t e) {
  if (!out->empty() && out->back().end == b) {
    out->back().end = e;
  } else {
    out->push_back({b, e});
  }
}

}  // namespace

DontForkRanges::DontForkRanges(std::size_t page_size) : page_size_(page_size) {}

PageRange DontForkRanges::PageAlign(std::uintptr_t addr, std::size_t len) const {
  const std::uintptr_t mask = page_size_ - 1;
  return {addr & ~mask, (addr + len + mask) & ~mask};
}

void DontForkRanges::SplitAt(std::uintptr_t at) {
  auto it = segs_.upper_bound(at);
  if (it == segs_.begin()) return;
  --it;
  if (it->first == at || it->second.end <= at) return;
  Seg tail{it->second.end, it->second.refs};
  it->second.end = at;
  segs_.emplace(at, tail);
}

void DontForkRanges::Coalesce(std::uintptr_t begin, std::uintptr_t end) {
  auto it = segs_.lower_bound(begin);
  if (it != segs_.begin()) --it;
  while (it != segs_.end() && it->first <= end) {
    auto next = std::next(it);
    if (next == segs_.end()) break;
    if (it->second.end == next->first && it->second.refs == next->second.refs) {
      it->second.end = next->second.end;
      segs_.erase(next);
    } else {
      it = next;
    }
  }
}

std::vector<PageRange> DontForkRanges::Add(std::uintptr_t addr, std::size_t len) {
  std::vector<PageRange> fresh;
  if (len == 0) return fresh;
  const PageRange r = PageAlign(addr, len);
  SplitAt(r.begin);
  SplitAt(r.end);
  std::uintptr_t cur = r.begin;
  auto it = segs_.lower_bound(r.begin);
  while (cur < r.end) {
    if (it == segs_.end() || it->first > cur) {
      // Gap [cur, gap_end): untracked pages, count 0 -> 1.
      const std::uintptr_t gap_end = (it == segs_.end()) ? r.end : std::min(it->first, r.end);
      it = segs_.emplace_hint(it, cur, Seg{gap_end, 1});
      AppendCoalesced(&fresh, cur, gap_end);
    } else {
      ++it->second.refs;
    }
    cur = it->second.end;
    ++it;
  }
  Coalesce(r.begin, r.end);
  return fresh;
}

absl::Status DontForkRanges::Remove(std::uintptr_t addr, std::size_t len,
                                    std::vector<PageRange>* released) {
  released->clear();
  if (len == 0) return absl::OkStatus();
  const PageRange r = PageAlign(addr, len);
  // Check coverage first so a bad call changes nothing.
  {
    std::uintptr_t cur = r.begin;
    auto it = segs_.upper_bound(r.begin);
    if (it != segs_.begin()) --it;
    while (cur < r.end) {
      if (it == segs_.end() || it->first > cur || it->second.end <= cur) {
        return absl::FailedPreconditionError(
            absl::StrCat("dontfork range [0x", absl::Hex(r.begin), ", 0x", absl::Hex(r.end),
                         ") is not fully tracked (page 0x", absl::Hex(cur), " has no reference)"));
      }
      cur = it->second.end;
      ++it;
    }
  }
  SplitAt(r.begin);
  SplitAt(r.end);
  auto it = segs_.lower_bound(r.begin);
  while (it != segs_.end() && it->first < r.end) {
    if (--it->second.refs == 0) {
      AppendCoalesced(released, it->first, it->second.end);
      it = segs_.erase(it);
    } else {
      ++it;
    }
  }
  Coalesce(r.begin, r.end);
  return absl::OkStatus();
}

std::uint32_t DontForkRanges::RefsAt(std::uintptr_t addr) const {
  auto it = segs_.upper_bound(addr);
  if (it == segs_.begin()) return 0;
  --it;
  return addr < it->second.end ? it->second.refs : 0;
}

std::vector<RefSegment> DontForkRanges::Segments() const {
  std::vector<RefSegment> out;
  for (const auto& [b, s] : segs_) out.push_back({{b, s.end}, s.refs});
  return out;
}

DontForkTracker::DontForkTracker() : ranges_(static_cast<std::size_t>(sysconf(_SC_PAGESIZE))) {}

DontForkTracker& DontForkTracker::Global() {
  static DontForkTracker* const tracker = new DontForkTracker();
  return *tracker;
}

absl::Status DontForkTracker::Add(void* addr, std::size_t len) {
  absl::MutexLock lock(&mu_);
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  std::vector<PageRange> fresh = ranges_.Add(a, len);
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    if (madvise(reinterpret_cast<void*>(fresh[i].begin), fresh[i].size(), MADV_DONTFORK) != 0) {
      absl::Status st = pinring::LastErrnoStatus("madvise(MADV_DONTFORK)");
      // Undo: the pages this call marked go back to DOFORK; drop the references we took.
      for (std::size_t j = 0; j < i; ++j) {
        madvise(reinterpret_cast<void*>(fresh[j].begin), fresh[j].size(), MADV_DOFORK);
      }
      std::vector<PageRange> ignored;
      (void)ranges_.Remove(a, len, &ignored);
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status DontForkTracker::Remove(void* addr, std::size_t len) {
  absl::MutexLock lock(&mu_);
  std::vector<PageRange> released;
  PINRING_RETURN_IF_ERROR(ranges_.Remove(reinterpret_cast<std::uintptr_t>(addr), len, &released));
  absl::Status first = absl::OkStatus();
  for (const PageRange& r : released) {
    if (madvise(reinterpret_cast<void*>(r.begin), r.size(), MADV_DOFORK) != 0 && first.ok()) {
      first = pinring::LastErrnoStatus("madvise(MADV_DOFORK)");
    }
  }
  return first;
}

std::vector<RefSegment> DontForkTracker::Segments() const {
  absl::MutexLock lock(&mu_);
  return ranges_.Segments();
}

}  // namespace pinring::internal
