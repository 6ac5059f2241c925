// The refcounted MADV_DONTFORK range tracker: overlap, split, merge, refcount, and the madvise
// effect seen through /proc/self/smaps (VmFlags "dc" = VM_DONTCOPY) and a real fork().
#include "verbs/dontfork_ranges.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <infiniband/verbs.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "verbs/fork_safety.h"

namespace pinring::internal {
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::uintptr_t kBase = 0x100000;
std::uintptr_t P(int n) { return kBase + n * kPage; }
PageRange R(int a, int b) { return {P(a), P(b)}; }
RefSegment S(int a, int b, std::uint32_t refs) { return {R(a, b), refs}; }

TEST(DontForkRanges, SingleAddRemove) {
  DontForkRanges t(kPage);
  EXPECT_THAT(t.Add(P(0), 3 * kPage), ::testing::ElementsAre(R(0, 3)));
  EXPECT_THAT(t.Segments(), ::testing::ElementsAre(S(0, 3, 1)));
  std::vector<PageRange> rel;
  ASSERT_TRUE(t.Remove(P(0), 3 * kPage, &rel).ok());
  EXPECT_THAT(rel, ::testing::ElementsAre(R(0, 3)));
  EXPECT_TRUE(t.empty());
}

TEST(DontForkRanges, PageWidening) {
  DontForkRanges t(kPage);
  // 10 bytes straddling a page boundary cover two pages.
  EXPECT_THAT(t.Add(P(1) - 5, 10), ::testing::ElementsAre(R(0, 2)));
  EXPECT_EQ(t.RefsAt(P(0)), 1u);
  EXPECT_EQ(t.RefsAt(P(1) + 100), 1u);
  EXPECT_EQ(t.RefsAt(P(2)), 0u);
  EXPECT_TRUE(t.Add(P(0), 0).empty());  // len 0: no-op
}

TEST(DontForkRanges, OverlapSplitsAndOnlyNewPagesAreFresh) {
  DontForkRanges t(kPage);
  t.Add(P(0), 4 * kPage);                                                // [0,4) x1
  EXPECT_THAT(t.Add(P(2), 4 * kPage), ::testing::ElementsAre(R(4, 6)));  // [2,6)
  EXPECT_THAT(t.Segments(), ::testing::ElementsAre(S(0, 2, 1), S(2, 4, 2), S(4, 6, 1)));
  std::vector<PageRange> rel;
  // Removing the first registration releases only the pages nobody else holds.
  ASSERT_TRUE(t.Remove(P(0), 4 * kPage, &rel).ok());
  EXPECT_THAT(rel, ::testing::ElementsAre(R(0, 2)));
  EXPECT_THAT(t.Segments(), ::testing::ElementsAre(S(2, 6, 1)));  // merged back
  ASSERT_TRUE(t.Remove(P(2), 4 * kPage, &rel).ok());
  EXPECT_THAT(rel, ::testing::ElementsAre(R(2, 6)));
  EXPECT_TRUE(t.empty());
}

TEST(DontForkRanges, AddAcrossHolesReturnsEachGap) {
  DontForkRanges t(kPage);
  t.Add(P(1), kPage);
  t.Add(P(3), kPage);
  EXPECT_THAT(t.Add(P(0), 5 * kPage), ::testing::ElementsAre(R(0, 1), R(2, 3), R(4, 5)));
  EXPECT_THAT(t.Segments(),
              ::testing::ElementsAre(S(0, 1, 1), S(1, 2, 2), S(2, 3, 1), S(3, 4, 2), S(4, 5, 1)));
}

TEST(DontForkRanges, AdjacentAddsMerge) {
  DontForkRanges t(kPage);
  t.Add(P(0), 2 * kPage);
  EXPECT_THAT(t.Add(P(2), 2 * kPage), ::testing::ElementsAre(R(2, 4)));
  EXPECT_THAT(t.Segments(), ::testing::ElementsAre(S(0, 4, 1)));
  // Remove the middle: splits into two.
  std::vector<PageRange> rel;
  t.Add(P(1), 2 * kPage);  // [1,3) x2
  ASSERT_TRUE(t.Remove(P(1), 2 * kPage, &rel).ok());
  EXPECT_TRUE(rel.empty());
  ASSERT_TRUE(t.Remove(P(1), 2 * kPage, &rel).ok());
  EXPECT_THAT(rel, ::testing::ElementsAre(R(1, 3)));
  EXPECT_THAT(t.Segments(), ::testing::ElementsAre(S(0, 1, 1), S(3, 4, 1)));
}

TEST(DontForkRanges, SameRangeRefcount) {
  DontForkRanges t(kPage);
  EXPECT_FALSE(t.Add(P(0), kPage).empty());
  EXPECT_TRUE(t.Add(P(0), kPage).empty());
  EXPECT_TRUE(t.Add(P(0), kPage).empty());
  EXPECT_EQ(t.RefsAt(P(0)), 3u);
  std::vector<PageRange> rel;
  ASSERT_TRUE(t.Remove(P(0), kPage, &rel).ok());
  ASSERT_TRUE(t.Remove(P(0), kPage, &rel).ok());
  EXPECT_TRUE(rel.empty());
  ASSERT_TRUE(t.Remove(P(0), kPage, &rel).ok());
  EXPECT_THAT(rel, ::testing::ElementsAre(R(0, 1)));
}

TEST(DontForkRanges, RemoveUntrackedFailsAndChangesNothing) {
  DontForkRanges t(kPage);
  t.Add(P(0), 2 * kPage);
  std::vector<PageRange> rel;
  absl::Status st = t.Remove(P(1), 2 * kPage, &rel);  // page 2 untracked
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(t.Segments(), ::testing::ElementsAre(S(0, 2, 1)));
  EXPECT_EQ(t.Remove(P(5), kPage, &rel).code(), absl::StatusCode::kFailedPrecondition);
}

// VmFlags of the VMA containing addr, from /proc/self/smaps.
std::string VmFlagsAt(void* addr) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  bool in_vma = false;
  while (std::getline(in, line)) {
    unsigned long b = 0, e = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &b, &e) == 2 && line.find(':') > 8) {
      in_vma = (a >= b && a < e);
    } else if (in_vma && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

bool HasDontCopy(void* addr) { return VmFlagsAt(addr).find(" dc") != std::string::npos; }

TEST(DontForkTracker, MadviseFollowsRefcount) {
  void* m = mmap(nullptr, 8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  char* p = static_cast<char*>(m);
  DontForkTracker t;
  ASSERT_TRUE(t.Add(p, 4 * kPage).ok());
  ASSERT_TRUE(t.Add(p + 2 * kPage, 4 * kPage).ok());
  EXPECT_TRUE(HasDontCopy(p));
  EXPECT_TRUE(HasDontCopy(p + 5 * kPage));
  EXPECT_FALSE(HasDontCopy(p + 7 * kPage));
  ASSERT_TRUE(t.Remove(p, 4 * kPage).ok());
  EXPECT_FALSE(HasDontCopy(p));             // refcount 0: DOFORK
  EXPECT_TRUE(HasDontCopy(p + 2 * kPage));  // still held by the second registration
  ASSERT_TRUE(t.Remove(p + 2 * kPage, 4 * kPage).ok());
  EXPECT_FALSE(HasDontCopy(p + 3 * kPage));
  EXPECT_EQ(t.Remove(p, kPage).code(), absl::StatusCode::kFailedPrecondition);
  munmap(m, 8 * kPage);
}

TEST(DontForkTracker, AddOnUnmappedMemoryFailsAndRecordsNothing) {
  // 2^47 is just past the default 47-bit user address space: the kernel never places a mapping
  // there unless asked with an explicit high hint, so madvise() must fail with ENOMEM. (A range
  // just munmap()ed is not safe: ASan's allocator and other threads reuse it at once.)
  void* m = reinterpret_cast<void*>(std::uintptr_t{1} << 47);
  DontForkTracker t;
  EXPECT_FALSE(t.Add(m, 4 * kPage).ok());
  EXPECT_TRUE(t.Segments().empty());
}

TEST(ForkSafety, DontForkChildGetsSegvOtherModesDoNot) {
  for (ForkMode mode : kAllForkModes) {
    SCOPED_TRACE(std::string(ForkModeName(mode)));
    const int flags =
        mode == ForkMode::kShared ? MAP_SHARED | MAP_ANONYMOUS : MAP_PRIVATE | MAP_ANONYMOUS;
    void* m = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, flags, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    static_cast<volatile char*>(m)[0] = 1;
    ASSERT_TRUE(ApplyForkSafety(m, kPage, mode).ok());
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Default action, so the child dies from the signal even under ASan (which installs a
      // SIGSEGV handler that would exit(1) instead). signal() is async-signal-safe.
      signal(SIGSEGV, SIG_DFL);
      static_cast<volatile char*>(m)[0] = 2;  // async-signal-safe: a plain store
      _exit(0);
    }
    int ws = 0;
    ASSERT_EQ(waitpid(pid, &ws, 0), pid);
    if (mode == ForkMode::kDontFork) {
      EXPECT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGSEGV) << "status " << ws;
    } else {
      EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << "status " << ws;
    }
    ReleaseForkSafety(m, kPage, mode);
    EXPECT_FALSE(HasDontCopy(m));
    munmap(m, kPage);
  }
}

TEST(ForkSafety, AccessFlagsPerMode) {
  EXPECT_EQ(RegistrationAccessFor(ForkMode::kReadOnly, false), IBV_ACCESS_REMOTE_READ);
  EXPECT_EQ(RegistrationAccessFor(ForkMode::kReadOnly, true), -1);
  EXPECT_NE(RegistrationAccessFor(ForkMode::kWriteForRead, false) & IBV_ACCESS_LOCAL_WRITE, 0);
  EXPECT_NE(RegistrationAccessFor(ForkMode::kKernel, false) & IBV_ACCESS_LOCAL_WRITE, 0);
  EXPECT_EQ(RegistrationAccessFor(ForkMode::kKernel, false) & IBV_ACCESS_REMOTE_WRITE, 0);
  // odp: on demand, and only odp.
  for (ForkMode m : kAllForkModes) {
    const int a = RegistrationAccessFor(m, m != ForkMode::kReadOnly);
    EXPECT_EQ((a & IBV_ACCESS_ON_DEMAND) != 0, m == ForkMode::kOdp) << ForkModeName(m);
  }
  EXPECT_NE(RegistrationAccessFor(ForkMode::kOdp, true) & IBV_ACCESS_REMOTE_WRITE, 0);
}

}  // namespace
}  // namespace pinring::internal
