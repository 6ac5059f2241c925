// fork() under each fork-safety mode, with the client's rings registered by the client itself
// (the rdma transport): what the device (ringd's RDMA READ of the submission ring) sees must match
// what the fork evaluator (tools/forkcheck) predicts for that mode; the parent keeps submitting
// after fork() and everything completes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <iterator>

#include "verbs/private_region.h"
#include "rdma_test_util.h"
#include "common/require_odp.h"
#include "verdict.h"

namespace pinring {
namespace {

namespace fc = ::pinring::forkcheck;
using testing::Checksum;
using testing::Fill;
using testing::Nop;
using testing::QueueOptionsFor;
using testing::StartListener;

constexpr std::uint64_t kChildUserData = 0xc41dc41dull;

fc::KernelFacts Facts() {
  const KernelForkReport kr = GetKernelForkReport();
  fc::KernelFacts f;
  f.release = kr.release;
  f.copy_on_fork = kr.version_has_copy_on_fork;
  f.reliable_readonly_pins = kr.version_has_reliable_readonly_pins;
  return f;
}

class RdmaFork : public ::testing::TestWithParam<ForkMode> {};

TEST_P(RdmaFork, DeviceViewMatchesTheForkEvaluator) {
  PINRING_REQUIRE_RDMA_DEVICE();
#ifdef PINRING_FORK_TEST_ODP
  PINRING_REQUIRE_WORKING_ODP();
#endif
  const ForkMode mode = GetParam();
  auto listener = StartListener();
  ASSERT_NE(listener, nullptr);
  auto o = QueueOptionsFor(*listener, 16);
  o.fork_mode = mode;
  // The fork mode protects the SQ ring the device READs: pull every batch, so the parent's
  // descriptors reach ringd through the ring and not inline in the doorbell (rdma_wire.h).
  o.max_inline_descriptors = 0;
  auto q = RdmaQueue::Connect(o);
  ASSERT_TRUE(q.ok()) << q.status();
  // A region the device reads (CHECKSUM) under the same mode, written by the parent.
  auto r = (*q)->CreateRegion(8192, mode);
  ASSERT_TRUE(r.ok()) << r.status();
  std::memset((*r)->data(), 0x11, 8192);
  for (int i = 0; i < 3; ++i) {
    auto c = (*q)->SubmitAndWait(Nop(100 + i), absl::Seconds(20));
    ASSERT_TRUE(c.ok()) << c.status();
  }

  // Under dontfork the child dies before reading `go`: its write must not kill us with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  const std::uint32_t child_slot = (*q)->sq_tail();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: write a descriptor into the parent's next submission slot (its copy of it, unless
    // the memory is shared) and the region; never touch the QP. Under dontfork this faults.
    close(ready[0]);
    close(go[1]);
    Descriptor* slot = (*q)->SqSlotForTesting(child_slot);
    Descriptor d{};
    d.user_data = kChildUserData;
    std::memcpy(slot, &d, sizeof d);
    std::memset((*r)->data(), 0xcc, 8192);
    char b = 1;
    (void)!write(ready[1], &b, 1);
    (void)!read(go[0], &b, 1);  // stay alive until the parent has submitted
    _exit(0);
  }
  close(ready[1]);
  close(go[0]);
  char b = 0;
  const bool child_wrote = read(ready[0], &b, 1) == 1;  // EOF: the child died (dontfork)

  // 1. The child-write scenario: ring the doorbell for the slot the child wrote, without writing
  // it ourselves. What ringd fetched tells what the device sees.
  (*q)->AdvanceTailForTesting(1);
  ASSERT_TRUE((*q)->RingDoorbellForTesting((*q)->sq_tail()).ok());
  Completion c{};
  auto n = (*q)->Reap(absl::MakeSpan(&c, 1), absl::Seconds(20));
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_EQ(*n, 1u);
  auto sum = (*q)->SubmitAndWait(Checksum((*r)->handle(), 0, 8192), absl::Seconds(20));
  ASSERT_TRUE(sum.ok()) << sum.status();
  std::vector<std::byte> child_image(8192, std::byte{0xcc});
  const bool ring_leak = c.user_data == kChildUserData;
  const bool region_leak = sum->result == Fnv1a64(child_image);

  // 2. Parent keeps submitting while the child is alive: every descriptor the parent writes
  // after fork() must reach the device (parent-write-child-alive).
  bool parent_coherent = true;
  for (int i = 0; i < 20; ++i) {
    auto k = (*q)->SubmitAndWait(Nop(1000 + i), absl::Seconds(20));
    ASSERT_TRUE(k.ok()) << k.status();
    parent_coherent &= k->user_data == 1000u + i && k->status == 0;
  }
  if (!ForkModeIsDeviceReadOnly(mode)) {
    auto f = (*q)->SubmitAndWait(Fill((*r)->handle(), 0, 8192, 0x77), absl::Seconds(20));
    ASSERT_TRUE(f.ok()) << f.status();
    parent_coherent &= f->status == 0 && (*r)->data()[8191] == std::byte{0x77};
  } else {
    std::memset((*r)->data(), 0x77, 8192);  // the parent's write after fork; the device reads it
  }
  std::vector<std::byte> parent_image(8192, std::byte{0x77});
  auto sum2 = (*q)->SubmitAndWait(Checksum((*r)->handle(), 0, 8192), absl::Seconds(20));
  ASSERT_TRUE(sum2.ok()) << sum2.status();
  parent_coherent &= sum2->result == Fnv1a64(parent_image);

  (void)!write(go[1], &b, 1);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  const int child_signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;

  // 3. After the child exited, the parent still submits.
  for (int i = 0; i < 20; ++i) {
    auto k = (*q)->SubmitAndWait(Nop(2000 + i), absl::Seconds(20));
    ASSERT_TRUE(k.ok()) << k.status();
    EXPECT_EQ(k->user_data, 2000u + i);
  }

  // Compare with the evaluator's predictions for this mode.
  const fc::KernelFacts facts = Facts();
  fc::Outcome child_outcome = fc::Outcome::kCoherent;
  if (ring_leak || region_leak) {
    child_outcome = fc::Outcome::kLeak;
  } else if (child_signal != 0 || !child_wrote) {
    child_outcome = fc::Outcome::kChildSignal;
  }
  const fc::Expectation want_child = fc::Expect(fc::Scenario::kChildWrite, mode, facts);
  EXPECT_EQ(fc::OutcomeName(child_outcome), fc::OutcomeName(want_child.outcome))
      << ForkModeName(mode) << ": " << want_child.guarantee << " (ring leak " << ring_leak
      << ", region leak " << region_leak << ", child signal " << child_signal << ")";
  const fc::Expectation want_parent =
      fc::Expect(fc::Scenario::kParentWriteChildAlive, mode, facts);
  const fc::Outcome parent_outcome = parent_coherent ? fc::Outcome::kCoherent : fc::Outcome::kStale;
  EXPECT_EQ(fc::OutcomeName(parent_outcome), fc::OutcomeName(want_parent.outcome))
      << ForkModeName(mode) << ": " << want_parent.guarantee;
  // The child cannot submit into the parent's ring: in every mode but shared, the slot the device
  // read is the parent's (zeroed) one.
  if (mode != ForkMode::kShared) {
    EXPECT_NE(c.user_data, kChildUserData);
  }
  if (mode == ForkMode::kDontFork) {
    EXPECT_EQ(child_signal, SIGSEGV);
  }
  std::fprintf(stderr, "fork mode %s: child-write -> %s, parent-write-child-alive -> %s\n",
               std::string(ForkModeName(mode)).c_str(),
               std::string(fc::OutcomeName(child_outcome)).c_str(),
               std::string(fc::OutcomeName(parent_outcome)).c_str());
}

// Built twice: the pinned modes (label rdma, every guest kernel), and odp alone (label odp, a
// guest whose rxe has on-demand paging: see tests/rdma_transport/CMakeLists.txt).
#ifdef PINRING_FORK_TEST_ODP
constexpr ForkMode kModesUnderTest[] = {ForkMode::kOdp};
#else
constexpr ForkMode kModesUnderTest[] = {ForkMode::kKernel, ForkMode::kDontFork,
                                        ForkMode::kReadOnly, ForkMode::kWriteForRead,
                                        ForkMode::kShared};
static_assert(std::size(kModesUnderTest) + 1 == kForkModeCount, "a new mode needs a fork test");
#endif

INSTANTIATE_TEST_SUITE_P(EveryMode, RdmaFork, ::testing::ValuesIn(kModesUnderTest),
                         [](const ::testing::TestParamInfo<ForkMode>& i) {
                           std::string n(ForkModeName(i.param));
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace pinring
