// The evaluator's verdict logic on constructed observations: classification precedence, what each
// mode is expected to guarantee, and that every unexpected result gets an explanation and a blame.
#include "verdict.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <vector>

namespace pinring::forkcheck {
namespace {

KernelFacts Modern() { return {true, true, "6.18.0"}; }
KernelFacts K61() { return {true, false, "6.1.0-20-amd64"}; }
KernelFacts K54() { return {false, false, "5.4.0"}; }

Observation Bytes(std::size_t ok, std::size_t child, std::size_t old) {
  Observation o;
  o.bytes_expected = ok;
  o.bytes_child = child;
  o.bytes_old = old;
  return o;
}

TEST(Classify, Precedence) {
  EXPECT_EQ(Classify(Bytes(10, 0, 0)), Outcome::kCoherent);
  EXPECT_EQ(Classify(Bytes(5, 0, 5)), Outcome::kStale);
  EXPECT_EQ(Classify(Bytes(5, 1, 4)), Outcome::kLeak);  // any child byte is a leak
  Observation sig = Bytes(10, 0, 0);
  sig.child_signal = SIGSEGV;
  EXPECT_EQ(Classify(sig), Outcome::kChildSignal);
  sig.bytes_old = 1;
  EXPECT_EQ(Classify(sig), Outcome::kStale);  // stale data outranks the child's signal
  Observation pf;
  pf.pin_errno = ENOMEM;
  EXPECT_EQ(Classify(pf), Outcome::kPinFailed);
  Observation df;
  df.device_fault = true;
  df.bytes_expected = 0;
  EXPECT_EQ(Classify(df), Outcome::kDeviceFault);
  // The kernel's refusal is kept apart from a registration the environment made fail.
  Observation refused;
  refused.pin_errno = EFAULT;
  refused.pin_refused = IsRefusalErrno(EFAULT);
  EXPECT_EQ(Classify(refused), Outcome::kRefused);
  Observation nomem;
  nomem.pin_errno = ENOMEM;
  nomem.pin_refused = IsRefusalErrno(ENOMEM);
  EXPECT_EQ(Classify(nomem), Outcome::kPinFailed);
  EXPECT_EQ(OutcomeName(Outcome::kRefused), "refused");
  EXPECT_EQ(OutcomeName(Outcome::kDeviceFault), "device-fault");
  Observation sk;
  sk.skip_reason = "no device";
  sk.pin_errno = ENOMEM;
  EXPECT_EQ(Classify(sk), Outcome::kSkipped);
  EXPECT_EQ(Classify(Observation{}), Outcome::kUnknown);  // nothing compared: tool bug
}

TEST(CountBytes, SplitsExpectedChildOld) {
  const std::vector<std::uint8_t> expected = {1, 1, 2, 2};
  const std::vector<std::uint8_t> view = {1, 9, 7, 2};
  Observation o;
  CountBytes(view.data(), expected.data(), 4, /*child_byte=*/9, &o);
  EXPECT_EQ(o.bytes_expected, 2u);
  EXPECT_EQ(o.bytes_child, 1u);
  EXPECT_EQ(o.bytes_old, 1u);
}

TEST(Expect, PerModeGuarantees) {
  for (ForkMode m : kAllForkModes) {
    SCOPED_TRACE(std::string(ForkModeName(m)));
    EXPECT_EQ(Expect(Scenario::kZeroPagePin, m, Modern()).outcome, Outcome::kCoherent);
    EXPECT_EQ(Expect(Scenario::kParentWriteChildAlive, m, Modern()).outcome, Outcome::kCoherent);
    // A pin holds the moved pages; odp registers addresses, and nothing is mapped there now.
    EXPECT_EQ(Expect(Scenario::kMremap, m, Modern()).outcome,
              m == ForkMode::kOdp ? Outcome::kDeviceFault : Outcome::kCoherent);
  }
  // odp pins nothing: the device follows the page tables, so replacing the pages is seen, and
  // the child's COW copies never are.
  EXPECT_EQ(Expect(Scenario::kDontneed, ForkMode::kOdp, Modern()).outcome, Outcome::kCoherent);
  EXPECT_EQ(Expect(Scenario::kMunmapRemap, ForkMode::kOdp, Modern()).outcome, Outcome::kCoherent);
  EXPECT_EQ(Expect(Scenario::kChildWrite, ForkMode::kOdp, Modern()).outcome, Outcome::kCoherent);
  EXPECT_EQ(Expect(Scenario::kChildWrite, ForkMode::kShared, Modern()).outcome, Outcome::kLeak);
  EXPECT_EQ(Expect(Scenario::kChildWrite, ForkMode::kDontFork, Modern()).outcome,
            Outcome::kChildSignal);
  EXPECT_EQ(Expect(Scenario::kChildTouch, ForkMode::kDontFork, Modern()).outcome,
            Outcome::kChildSignal);
  EXPECT_EQ(Expect(Scenario::kChildTouch, ForkMode::kKernel, Modern()).outcome, Outcome::kCoherent);
  EXPECT_EQ(Expect(Scenario::kChildWrite, ForkMode::kKernel, Modern()).outcome, Outcome::kCoherent);
  EXPECT_EQ(Expect(Scenario::kDontneed, ForkMode::kKernel, Modern()).outcome, Outcome::kStale);
  EXPECT_EQ(Expect(Scenario::kMunmapRemap, ForkMode::kShared, Modern()).outcome,
            Outcome::kCoherent);
  // .rodata: only a registration that asks for no write access can pin a PROT_READ mapping.
  for (ForkMode m : kAllForkModes) {
    const bool reads_only = m == ForkMode::kReadOnly || m == ForkMode::kOdp;
    EXPECT_EQ(Expect(Scenario::kProtReadPin, m, Modern()).outcome,
              reads_only ? Outcome::kCoherent : Outcome::kRefused)
        << ForkModeName(m);
    EXPECT_EQ(Expect(Scenario::kPinAfterSharedFork, m, Modern()).outcome, Outcome::kCoherent);
  }
  // Files: a write pin of a shared page writeback tracks is refused (6.5+), tmpfs is fine, and any
  // pin of a MAP_PRIVATE file page holds the process's own copy, not the file.
  EXPECT_EQ(Expect(Scenario::kFileSharedDisk, ForkMode::kKernel, Modern()).outcome,
            Outcome::kRefused);
  EXPECT_EQ(Expect(Scenario::kFileSharedDisk, ForkMode::kReadOnly, Modern()).outcome,
            Outcome::kCoherent);
  EXPECT_EQ(Expect(Scenario::kFileSharedTmpfs, ForkMode::kKernel, Modern()).outcome,
            Outcome::kCoherent);
  EXPECT_EQ(Expect(Scenario::kFilePrivatePwrite, ForkMode::kReadOnly, Modern()).outcome,
            Outcome::kStale);
  EXPECT_EQ(Expect(Scenario::kFilePrivatePwrite, ForkMode::kOdp, Modern()).outcome,
            Outcome::kCoherent);
  // An old kernel that still grants the write pin is a mismatch blamed on the kernel.
  Observation granted;
  granted.bytes_expected = 1;
  const Judgement old_kernel =
      Judge(Scenario::kFileSharedDisk, ForkMode::kKernel, K54(), Outcome::kCoherent, granted);
  EXPECT_TRUE(old_kernel.mismatch);
  EXPECT_EQ(old_kernel.blame, Blame::kKernel);
  EXPECT_NE(old_kernel.explanation.find("set_page_dirty"), std::string::npos);
  // The expectation is the mode's promise, not the kernel's ability.
  EXPECT_EQ(Expect(Scenario::kZeroPagePin, ForkMode::kReadOnly, K54()).outcome, Outcome::kCoherent);
}

TEST(Judge, CoherentAsExpectedNeedsNoExplanation) {
  Judgement j =
      Judge(Scenario::kChildWrite, ForkMode::kKernel, Modern(), Outcome::kCoherent, Bytes(1, 0, 0));
  EXPECT_FALSE(j.mismatch);
  EXPECT_EQ(j.blame, Blame::kNone);
  EXPECT_TRUE(j.explanation.empty());
}

TEST(Judge, ExpectedNonCoherentIsExplained) {
  Observation o = Bytes(0, 10, 0);
  Judgement j = Judge(Scenario::kChildWrite, ForkMode::kShared, Modern(), Outcome::kLeak, o);
  EXPECT_FALSE(j.mismatch);
  EXPECT_EQ(j.blame, Blame::kByDesign);
  EXPECT_FALSE(j.explanation.empty());
  j = Judge(Scenario::kDontneed, ForkMode::kKernel, Modern(), Outcome::kStale, Bytes(0, 0, 9));
  EXPECT_FALSE(j.mismatch);
  EXPECT_EQ(j.blame, Blame::kApplication);
  o = Bytes(10, 0, 0);
  o.child_signal = SIGSEGV;
  j = Judge(Scenario::kChildTouch, ForkMode::kDontFork, Modern(), Outcome::kChildSignal, o);
  EXPECT_FALSE(j.mismatch);
  EXPECT_NE(j.explanation.find("SEGV"), std::string::npos) << j.explanation;
}

TEST(Judge, ReadOnlyZeroPageOnOldKernelBlamesKernel) {
  Judgement j =
      Judge(Scenario::kZeroPagePin, ForkMode::kReadOnly, K61(), Outcome::kStale, Bytes(0, 0, 100));
  EXPECT_TRUE(j.mismatch);
  EXPECT_EQ(j.blame, Blame::kKernel);
  EXPECT_NE(j.explanation.find("6.1.0"), std::string::npos);
  EXPECT_NE(j.explanation.find("zero page"), std::string::npos);
}

TEST(Judge, ReadOnlyCoherentOnOldKernelIsExplainedNotFlagged) {
  Judgement j = Judge(Scenario::kZeroPagePin, ForkMode::kReadOnly, K61(), Outcome::kCoherent,
                      Bytes(100, 0, 0));
  EXPECT_FALSE(j.mismatch);
  EXPECT_NE(j.explanation.find("FOLL_FORCE|FOLL_WRITE"), std::string::npos);
  j = Judge(Scenario::kZeroPagePin, ForkMode::kReadOnly, Modern(), Outcome::kCoherent,
            Bytes(100, 0, 0));
  EXPECT_TRUE(j.explanation.empty());
}

TEST(Judge, StaleAfterForkWithoutCopyOnForkBlamesKernel) {
  Judgement j = Judge(Scenario::kParentWriteChildAlive, ForkMode::kKernel, K54(), Outcome::kStale,
                      Bytes(0, 0, 100));
  EXPECT_TRUE(j.mismatch);
  EXPECT_EQ(j.blame, Blame::kKernel);
  EXPECT_NE(j.explanation.find("copy-on-fork"), std::string::npos);
}

TEST(Judge, UnexplainedMismatchIsFlaggedNotHidden) {
  // A leak under kernel mode on a modern kernel: nothing known explains it.
  Judgement j =
      Judge(Scenario::kChildWrite, ForkMode::kKernel, Modern(), Outcome::kLeak, Bytes(0, 5, 0));
  EXPECT_TRUE(j.mismatch);
  EXPECT_EQ(j.blame, Blame::kUnexplained);
  EXPECT_NE(j.explanation.find("investigate"), std::string::npos);
  // dontfork child touched the range and lived: MADV_DONTFORK did not take effect.
  j = Judge(Scenario::kChildTouch, ForkMode::kDontFork, Modern(), Outcome::kCoherent,
            Bytes(5, 0, 0));
  EXPECT_TRUE(j.mismatch);
  EXPECT_EQ(j.blame, Blame::kUnexplained);
}

TEST(Judge, PinFailedCarriesErrno) {
  Observation o;
  o.pin_errno = ENOMEM;
  Judgement j = Judge(Scenario::kZeroPagePin, ForkMode::kKernel, Modern(), Outcome::kPinFailed, o);
  EXPECT_TRUE(j.mismatch);
  EXPECT_EQ(j.blame, Blame::kBackend);
  EXPECT_NE(j.explanation.find("errno 12"), std::string::npos) << j.explanation;
}

TEST(Judge, SkipsNeverMismatch) {
  Observation o;
  o.skip_reason = "no hugetlb memory";
  Judgement j = Judge(Scenario::kHugetlb, ForkMode::kKernel, Modern(), Outcome::kSkipped, o);
  EXPECT_FALSE(j.mismatch);
  EXPECT_EQ(j.explanation, "no hugetlb memory");
}

TEST(Judge, UnknownIsAlwaysAMismatch) {
  Judgement j =
      Judge(Scenario::kMremap, ForkMode::kKernel, Modern(), Outcome::kUnknown, Observation{});
  EXPECT_TRUE(j.mismatch);
  EXPECT_EQ(j.blame, Blame::kUnexplained);
}

TEST(Names, RoundTrip) {
  for (Scenario s : kAllScenarios) {
    ASSERT_TRUE(ParseScenario(ScenarioName(s)).has_value());
    EXPECT_EQ(*ParseScenario(ScenarioName(s)), s);
  }
  EXPECT_FALSE(ParseScenario("nope").has_value());
  EXPECT_EQ(SplitList("a,,b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(SplitList("all").empty());
}

}  // namespace
}  // namespace pinring::forkcheck
