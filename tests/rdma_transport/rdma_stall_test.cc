// One stalled party must delay nobody else (issue 14, part 3): ringd's rdma transport makes
// progress per connection, so while one client's REMOTE op waits on a peer ringd that stopped
// answering, another client of the same ringd keeps its round trips.
//
// The peer is a real ringd process, stopped with SIGSTOP after its peer link is up: its kernel
// still accepts the forwarded PeerOp, and nothing answers it. The assertion is an ordering, not
// a time: the healthy client finishes all its NOPs while the stalled op is still pending. With
// one synchronous thread (the old listener), the NOPs waited for the stalled op's timeout, and
// the stalled op completed first.
#include <signal.h>

#include <gtest/gtest.h>

#include <memory>

#include "common/ringd_process.h"
#include "rdma_test_util.h"

namespace pinring {
namespace {

using testing::Nop;
using testing::QueueOptionsFor;
using testing::StartListener;

struct Resume {
  pid_t pid;
  ~Resume() { kill(pid, SIGCONT); }
};

TEST(RdmaStall, StalledPeerRingdDelaysOnlyTheClientThatNamedIt) {
  PINRING_REQUIRE_RDMA_DEVICE();
  ringd::RdmaListenerOptions lo;
  lo.op_timeout = absl::Seconds(6);
  auto a = StartListener(lo);
  ASSERT_NE(a, nullptr);
  auto b = testing::RingdProcess::Start({"--backend=cpu", "--rdma_port=18555"});
  ASSERT_TRUE(b.ok()) << b.status();

  RdmaQueueOptions bo = QueueOptionsFor(*a);
  bo.port = 18555;
  // ringd b's rdma listener may start a moment after its socket answers.
  auto owner = RdmaQueue::Connect(bo);
  for (int i = 0; i < 50 && !owner.ok(); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    owner = RdmaQueue::Connect(bo);
  }
  ASSERT_TRUE(owner.ok()) << owner.status() << "\nringd b:\n" << (*b)->Stderr();
  auto target = (*owner)->CreateRegion(4096);
  ASSERT_TRUE(target.ok()) << target.status();
  auto token = (*owner)->ExportRegion(*target);
  ASSERT_TRUE(token.ok()) << token.status();

  auto writer = RdmaQueue::Connect(QueueOptionsFor(*a));
  auto healthy = RdmaQueue::Connect(QueueOptionsFor(*a));
  ASSERT_TRUE(writer.ok() && healthy.ok());
  auto src = (*writer)->CreateRegion(4096);
  ASSERT_TRUE(src.ok());
  std::memset((*src)->data(), 0x3c, 4096);
  // The peer link comes up and works.
  auto first = (*writer)->SubmitAndWait(RemoteWriteDescriptor(*token, 0, (*src)->handle(), 0,
                                                              4096, 1),
                                        absl::Seconds(30));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->status, 0);
  ASSERT_EQ((*target)->data()[4095], std::byte{0x3c});

  // Ringd b stops answering; the writer's next REMOTE op waits on it.
  ASSERT_EQ(kill((*b)->pid(), SIGSTOP), 0);
  Resume resume{(*b)->pid()};
  const Descriptor stalled = RemoteWriteDescriptor(*token, 0, (*src)->handle(), 0, 4096, 2);
  ASSERT_TRUE((*writer)->Submit(absl::MakeConstSpan(&stalled, 1)).ok());

  constexpr int kNops = 200;
  for (int i = 0; i < kNops; ++i) {
    auto c = (*healthy)->SubmitAndWait(Nop(100 + i), absl::Seconds(30));
    ASSERT_TRUE(c.ok()) << "NOP " << i << ": " << c.status();
    ASSERT_EQ(c->status, 0);
  }
  Completion out[1];
  auto early = (*writer)->Reap(absl::MakeSpan(out), absl::ZeroDuration());
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(*early, 0u) << "the stalled REMOTE op completed before the healthy client's "
                        << kNops << " NOPs: they waited for it";

  // The stalled op ends at ringd a's op timeout, as a device error; the writer's own connection
  // stays healthy, and so does the healthy client.
  auto late = (*writer)->Reap(absl::MakeSpan(out), absl::Seconds(60));
  ASSERT_TRUE(late.ok()) << late.status();
  ASSERT_EQ(*late, 1u);
  EXPECT_EQ(out[0].user_data, 2u);
  EXPECT_EQ(static_cast<CompletionStatus>(out[0].status), CompletionStatus::kDeviceError);
  EXPECT_TRUE((*writer)->error().ok()) << (*writer)->error();
  auto after = (*healthy)->SubmitAndWait(Nop(1000), absl::Seconds(30));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(a->stats().failed, 0u);
}

}  // namespace
}  // namespace pinring
