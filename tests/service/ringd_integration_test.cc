// A real ringd process (PINRING_TEST_BACKEND: cpu or verbs) and raw-protocol clients: data ops
// in every doorbell mode, error completions, hostile clients, crashes, concurrency, limits, stats,
// SIGTERM. Built twice: ringd_cpu_test (label unit) and ringd_verbs_test (label rdma).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "ringd_test_fixture.h"

namespace pinring::testing {
namespace {

void Pattern(TestRegion& r, std::uint32_t seed) {
  std::mt19937 g(seed);
  for (std::size_t i = 0; i < r.size; ++i) r.data[i] = static_cast<std::byte>(g());
}

// COPY, CHECKSUM, FILL (byte and pattern), NOP through one queue; verifies the bytes.
void ExerciseQueue(RawClient& c, TestQueue::Options o, std::uint32_t seed) {
  auto q = TestQueue::Make(o);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE((*q)->Create(c).ok());
  constexpr std::size_t kSize = 64 * 1024;
  auto src = TestRegion::Make(kSize);
  auto dst = TestRegion::Make(kSize);
  ASSERT_TRUE(src.ok() && dst.ok());
  ASSERT_TRUE((*src)->Register(c).ok());
  ASSERT_TRUE((*dst)->Register(c).ok());
  Pattern(**src, seed);
  const std::uint32_t s = (*src)->handle, d = (*dst)->handle;
  for (int round = 0; round < 3; ++round) {
    const Descriptor ds[] = {
        CopyDesc(1, s, 0, d, 0, kSize / 2),
        CopyDesc(2, s, kSize / 2, d, kSize / 2, kSize / 2 - 8),
        ChecksumDesc(3, s, 100, 5000),
        FillDesc(4, d, kSize - 8, 8, 0x0102030405060708ull, true),
        Descriptor{},  // NOP
        FillDesc(6, s, kSize - 16, 3, 0xab),
    };
    ASSERT_TRUE((*q)->Submit(ds));
    auto done = (*q)->Reap(6);
    ASSERT_TRUE(done.ok()) << done.status();
    for (std::size_t i = 0; i < done->size(); ++i) {
      EXPECT_EQ((*done)[i].status, 0) << "completion " << i << " "
                                      << CompletionStatusName(static_cast<CompletionStatus>((*done)[i].status));
    }
    EXPECT_EQ((*done)[0].user_data, 1u);
    EXPECT_EQ((*done)[0].result, kSize / 2);
    EXPECT_EQ((*done)[2].result, Fnv1a64((*src)->bytes(100, 5000)));
    EXPECT_EQ(std::memcmp((*src)->data, (*dst)->data, kSize - 16), 0);
    std::uint64_t tail;
    std::memcpy(&tail, (*dst)->data + kSize - 8, 8);
    EXPECT_EQ(tail, 0x0102030405060708ull);
    EXPECT_EQ(static_cast<std::uint8_t>((*src)->data[kSize - 15]), 0xab);
  }
}

// One commit of dependent and independent ops: ringd serves it as one batch (the verbs backend
// keeps its COPYs in flight together), yet every op must see the effect of the ones before it.
// The chain A -> B -> C -> D reads, in each COPY, what the previous COPY of the same batch wrote.
// (On rxe a loopback WRITE lands before the next one is read, so this passed there even with the
// verbs backend's read-after-write flush disabled; the flush is for NICs that pipeline. What the
// test pins down on every backend: order, data and statuses of a mixed batch.)
TEST_F(RingdTest, OneBatchOfDependentOpsSeesEachOthersData) {
  Start();
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  TestQueue::Options o;
  o.sq_entries = 64;
  o.cq_entries = 64;
  auto q = TestQueue::Make(o);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE((*q)->Create(*c).ok());
  constexpr std::size_t kSize = 64 * 1024, kPart = 4096;
  std::unique_ptr<TestRegion> r[4];
  for (int i = 0; i < 4; ++i) {
    auto m = TestRegion::Make(kSize);
    ASSERT_TRUE(m.ok()) << m.status();
    r[i] = std::move(*m);
    ASSERT_TRUE(r[i]->Register(*c).ok());
    std::memset(r[i]->data, 0, kSize);
  }
  Pattern(*r[0], 7);
  const std::uint32_t a = r[0]->handle, b = r[1]->handle, cc = r[2]->handle, d = r[3]->handle;
  for (int round = 0; round < 5; ++round) {  // the race, if any, gets several chances
    std::vector<Descriptor> ds;
    std::uint64_t ud = 0;
    // Independent small COPYs first, so the dependent ones join a busy pipeline.
    for (int i = 0; i < 24; ++i) ds.push_back(CopyDesc(++ud, a, i * 64, d, 32768 + i * 64, 64));
    ds.push_back(CopyDesc(++ud, a, 0, b, 0, kPart));   // B <- A
    ds.push_back(CopyDesc(++ud, b, 0, cc, 0, kPart));  // C <- B (reads what the last one wrote)
    ds.push_back(CopyDesc(++ud, cc, 0, d, 0, kPart));  // D <- C
    ds.push_back(ChecksumDesc(++ud, d, 0, kPart));     // over what the device wrote into D
    ds.push_back(FillDesc(++ud, b, kPart, kPart, 0x40 + round));  // B[4K,8K) <- byte
    ds.push_back(CopyDesc(++ud, b, kPart, cc, kPart, kPart));     // C[4K,8K) <- B[4K,8K)
    ds.push_back(CopyDesc(++ud, cc, kPart + 8, d, kPart, 64));    // D[4K,+64) <- C[4K+8,..)
    ds.push_back(Descriptor{});                                   // NOP
    ds.push_back(CopyDesc(++ud, a, 0, 999, 0, 8));                // unknown region: rejected
    ASSERT_TRUE((*q)->Submit(ds));
    auto done = (*q)->Reap(static_cast<std::uint32_t>(ds.size()));
    ASSERT_TRUE(done.ok()) << done.status();
    for (std::size_t i = 0; i < done->size(); ++i) {
      EXPECT_EQ((*done)[i].user_data, ds[i].user_data) << "completions out of order at " << i;
      const auto want =
          i + 1 == ds.size() ? CompletionStatus::kUnknownRegion : CompletionStatus::kOk;
      EXPECT_EQ((*done)[i].status, static_cast<std::int32_t>(want)) << "op " << i;
    }
    EXPECT_EQ(std::memcmp(r[3]->data, r[0]->data, kPart), 0)
        << "round " << round << ": D != A through B and C";
    EXPECT_EQ((*done)[27].result, Fnv1a64(r[0]->bytes(0, kPart)));
    for (std::size_t i = 0; i < kPart; ++i) {
      ASSERT_EQ(static_cast<int>(r[2]->data[kPart + i]), 0x40 + round) << "C[4K+" << i << "]";
    }
    for (std::size_t i = 0; i < 64; ++i) {
      ASSERT_EQ(static_cast<int>(r[3]->data[kPart + i]), 0x40 + round) << "D[4K+" << i << "]";
    }
    EXPECT_EQ(std::memcmp(r[3]->data + 32768, r[0]->data, 24 * 64), 0);
    std::memset(r[1]->data, 0, kSize);  // the next round starts from empty B, C, D
    std::memset(r[2]->data, 0, kSize);
    std::memset(r[3]->data, 0, kSize);
  }
}

TEST_F(RingdTest, HelloReportsBackendAndLimits) {
  Start({"--max_queues=3"});
  auto c = RawClient::Connect(ringd_->socket_path());
  ASSERT_TRUE(c.ok());
  auto h = (*c)->Hello();
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_STREQ(h->backend, PINRING_TEST_BACKEND);
  EXPECT_EQ(h->limits.max_queues, 3u);
}

class DoorbellTest : public RingdTest,
                     public ::testing::WithParamInterface<std::tuple<int, int>> {};

TEST_P(DoorbellTest, DataOpsInEveryDoorbellMode) {
  Start({"--adaptive_poll_us=200"});
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  TestQueue::Options o;
  o.doorbell = static_cast<wire::DoorbellMode>(std::get<0>(GetParam()));
  o.wait = static_cast<wire::CompletionWait>(std::get<1>(GetParam()));
  ExerciseQueue(*c, o, 42);
  if (o.doorbell == wire::DoorbellMode::kAdaptive) {
    // Idle long enough for ringd to sleep, then submit again: the doorbell must wake it.
    absl::SleepFor(absl::Milliseconds(50));
    ExerciseQueue(*c, o, 43);
  }
}
INSTANTIATE_TEST_SUITE_P(Modes, DoorbellTest,
                         ::testing::Combine(::testing::Values(0, 1, 2), ::testing::Values(0, 1)));

TEST_F(RingdTest, EventfdModeNeedsTheDoorbellAndAdaptiveSleeps) {
  Start({"--adaptive_poll_us=100"});
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  TestQueue::Options o;
  o.doorbell = wire::DoorbellMode::kEventfd;
  auto q = TestQueue::Make(o);
  ASSERT_TRUE((*q)->Create(*c).ok());
  EXPECT_EQ((*q)->hdr->sq_flags.value.load() & kSqNeedWakeup, kSqNeedWakeup);
  o.doorbell = wire::DoorbellMode::kAdaptive;
  auto a = TestQueue::Make(o);
  ASSERT_TRUE((*a)->Create(*c).ok());
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ((*a)->hdr->sq_flags.value.load() & kSqNeedWakeup, kSqNeedWakeup)
      << "adaptive queue idle for 100 ms should have gone to sleep";
  ASSERT_TRUE((*a)->Submit(Descriptor{}));
  EXPECT_EQ((*a)->doorbells_rung, 1u);
  ASSERT_TRUE((*a)->Reap(1).ok());
}

TEST_F(RingdTest, ErrorCompletionsCarryTheCode) {
  Start();
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  auto q = TestQueue::Make({});
  ASSERT_TRUE((*q)->Create(*c).ok());
  auto rw = TestRegion::Make(4096);
  auto ro = TestRegion::Make(4096);
  ASSERT_TRUE((*rw)->Register(*c).ok());
  absl::Status ro_status = (*ro)->Register(*c, ForkMode::kReadOnly);
  ASSERT_TRUE(ro_status.ok()) << ro_status;
  const std::uint32_t w = (*rw)->handle, r = (*ro)->handle;
  Descriptor bad_op{};
  bad_op.opcode = 9;
  Descriptor bad_res = CopyDesc(0, w, 0, w, 2048, 16);
  bad_res.reserved1 = 5;
  Descriptor bad_flags = CopyDesc(0, w, 0, w, 2048, 16);
  bad_flags.flags = kDescFlagFillPattern64;
  const Descriptor ds[] = {
      bad_op,
      CopyDesc(0, 999, 0, w, 0, 16),
      CopyDesc(0, w, 4000, w, 0, 200),
      bad_flags,
      FillDesc(0, w, 3, 16, 1, true),
      bad_res,
      CopyDesc(0, w, 0, r, 0, 16),
      CopyDesc(0, w, 0, w, 8, 16),
      ChecksumDesc(0, r, 0, 4096),
  };
  const CompletionStatus want[] = {
      CompletionStatus::kBadOpcode,  CompletionStatus::kUnknownRegion,
      CompletionStatus::kOutOfBounds, CompletionStatus::kBadFlags,
      CompletionStatus::kMisaligned, CompletionStatus::kBadReserved,
      CompletionStatus::kReadOnlyRegion, CompletionStatus::kOverlap,
      CompletionStatus::kOk};
  ASSERT_TRUE((*q)->Submit(ds));
  auto done = (*q)->Reap(9);
  ASSERT_TRUE(done.ok()) << done.status();
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ((*done)[i].status, static_cast<int>(want[i])) << i;
  }
  // Deregistered handles stop working.
  wire::DeregisterRegion dr{};
  dr.handle = w;
  auto rep = c->Call<wire::DeregisterRegionReply>(MessageType::kDeregisterRegion, dr,
                                                     MessageType::kDeregisterRegionReply);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(wire::FromReplyStatus(rep->status).ok());
  ASSERT_TRUE((*q)->Submit(CopyDesc(0, r, 0, w, 0, 16)));
  done = (*q)->Reap(1);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ((*done)[0].status, static_cast<int>(CompletionStatus::kUnknownRegion));
}

TEST_F(RingdTest, MalformedMessagesDisconnectOnlyTheSender) {
  Start();
  auto good = Connect("good");
  ASSERT_NE(good, nullptr);
  auto gq = TestQueue::Make({});
  ASSERT_TRUE((*gq)->Create(*good).ok());

  auto expect_dropped = [&](auto send) {
    auto c = RawClient::Connect(ringd_->socket_path());
    ASSERT_TRUE(c.ok());
    send(**c);
    EXPECT_TRUE((*c)->WaitClosed()) << "ringd should disconnect a client that breaks framing";
  };
  expect_dropped([](RawClient& c) { (void)c.SendRaw("12345678", 8); });  // truncated
  expect_dropped([](RawClient& c) {                                      // bad magic
    wire::Hello h{};
    auto m = wire::MakeMessage(MessageType::kHello, 1, h);
    m.header.magic = 0xdeadbeef;
    (void)c.SendRaw(&m, sizeof m);
  });
  expect_dropped([](RawClient& c) {  // length field lies
    wire::Hello h{};
    auto m = wire::MakeMessage(MessageType::kHello, 1, h);
    m.header.length += 4;
    (void)c.SendRaw(&m, sizeof m);
  });
  expect_dropped([](RawClient& c) {  // oversized
    std::vector<char> big(wire::kMaxMessageSize + 100, 'x');
    (void)c.SendRaw(big.data(), big.size());
  });
  expect_dropped([](RawClient& c) {  // fd where none belongs
    wire::Hello h{};
    const int fds[1] = {0};
    (void)c.Send(MessageType::kHello, h, fds);
  });
  expect_dropped([](RawClient& c) {  // too many fds (MSG_CTRUNC)
    wire::CreateQueue m{};
    const int fds[6] = {0, 0, 0, 0, 0, 0};
    (void)c.Send(MessageType::kCreateQueue, m, fds);
  });
  expect_dropped([](RawClient& c) {  // a reply type, client -> ringd
    wire::HelloReply r{};
    (void)c.Send(MessageType::kHelloReply, r);
  });
  // Semantic errors get a reply and keep the connection.
  auto c = Connect("semantic");
  ASSERT_NE(c, nullptr);
  TestQueue::Options o;
  o.sq_entries = 3;
  auto q = TestQueue::Make({});
  (*q)->opts.sq_entries = 3;
  auto rep = (*q)->CreateRaw(*c);
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(wire::FromReplyStatus(rep->status).code(), absl::StatusCode::kInvalidArgument);

  // The well-behaved client never noticed.
  auto r = TestRegion::Make(4096);
  ASSERT_TRUE((*r)->Register(*good).ok());
  ASSERT_TRUE((*gq)->Submit(FillDesc(1, (*r)->handle, 0, 4096, 7)));
  auto done = (*gq)->Reap(1);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ((*done)[0].status, 0);
  EXPECT_TRUE(ringd_->Running());
}

TEST_F(RingdTest, UntrustedMemfdsAreRefusedWithAClearError) {
  Start();
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  TestQueue::Options o;
  o.seal = false;
  auto q = TestQueue::Make(o);
  auto rep = (*q)->CreateRaw(*c);
  ASSERT_TRUE(rep.ok());
  absl::Status s = wire::FromReplyStatus(rep->status);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("F_SEAL_SHRINK"), absl::string_view::npos) << s;
  o = {};
  o.size_delta = 4096;
  q = TestQueue::Make(o);
  EXPECT_FALSE(wire::FromReplyStatus((*q)->CreateRaw(*c)->status).ok()) << "wrong size";
  o = {};
  o.corrupt_layout = true;
  q = TestQueue::Make(o);
  s = wire::FromReplyStatus((*q)->CreateRaw(*c)->status);
  EXPECT_NE(s.message().find("layout"), absl::string_view::npos) << s;
  // Queue fds that are not eventfds.
  q = TestQueue::Make({});
  std::swap((*q)->doorbell, (*q)->memfd);
  EXPECT_FALSE(wire::FromReplyStatus((*q)->CreateRaw(*c)->status).ok());
  std::swap((*q)->doorbell, (*q)->memfd);
  // Regions: unsealed, and smaller than claimed.
  auto r = TestRegion::Make(4096, /*seal=*/false);
  s = wire::FromReplyStatus((*r)->RegisterRaw(*c, ForkMode::kShared)->status);
  EXPECT_NE(s.message().find("F_SEAL_SHRINK"), absl::string_view::npos) << s;
  r = TestRegion::Make(4096);
  EXPECT_FALSE(wire::FromReplyStatus((*r)->RegisterRaw(*c, ForkMode::kShared, 8192)->status).ok());
  // Unknown fork mode.
  wire::RegisterRegion m{};
  m.size = 4096;
  m.fork_mode = 17;
  const int fds[1] = {(*r)->fd};
  auto rr = c->Call<wire::RegisterRegionReply>(MessageType::kRegisterRegion, m,
                                               MessageType::kRegisterRegionReply, fds);
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ(wire::FromReplyStatus(rr->status).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ringd_->Running());
}

TEST_F(RingdTest, LimitsNameTheFlag) {
  Start({"--max_regions=2", "--max_queues=1", "--max_region_bytes=65536",
         "--max_ring_entries=64"});
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  auto q1 = TestQueue::Make({});
  ASSERT_TRUE((*q1)->Create(*c).ok());
  auto q2 = TestQueue::Make({});
  absl::Status s = (*q2)->Create(*c);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("--max_queues"), absl::string_view::npos) << s;
  std::vector<std::unique_ptr<TestRegion>> regions;
  for (int i = 0; i < 3; ++i) regions.push_back(*TestRegion::Make(4096));
  ASSERT_TRUE(regions[0]->Register(*c).ok());
  ASSERT_TRUE(regions[1]->Register(*c).ok());
  s = regions[2]->Register(*c);
  EXPECT_NE(s.message().find("--max_regions"), absl::string_view::npos) << s;
  auto big = TestRegion::Make(128 * 1024);
  s = (*big)->Register(*c);
  EXPECT_NE(s.message().find("--max_region_bytes"), absl::string_view::npos) << s;
}

TEST_F(RingdTest, HostileIndicesAndGarbageStopOnlyThatQueue) {
  Start({"--pollers=2"});
  auto good = Connect("good");
  auto evil = Connect("evil");
  ASSERT_NE(good, nullptr);
  ASSERT_NE(evil, nullptr);
  auto gq = TestQueue::Make({});
  ASSERT_TRUE((*gq)->Create(*good).ok());
  auto gr = TestRegion::Make(8192);
  ASSERT_TRUE((*gr)->Register(*good).ok());
  Pattern(**gr, 1);

  // Garbage descriptors: every one gets an error (or harmless) completion, ringd survives.
  auto eq = TestQueue::Make({});
  ASSERT_TRUE((*eq)->Create(*evil).ok());
  auto er = TestRegion::Make(4096);
  ASSERT_TRUE((*er)->Register(*evil).ok());
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20; ++round) {
    Descriptor ds[32];
    for (auto& d : ds) {
      std::uint64_t words[8];
      for (auto& w : words) w = rng();
      std::memcpy(&d, words, sizeof d);
      if (round % 2 == 0) {  // half the rounds: plausible fields, hostile values
        d.opcode = static_cast<std::uint8_t>(rng() % 5);
        d.flags = static_cast<std::uint8_t>(rng() % 4);
        d.reserved0 = d.reserved1 = 0;
        d.reserved2 = 0;
        d.src_region = d.dst_region = (*er)->handle + static_cast<std::uint32_t>(rng() % 2);
        d.src_offset %= 8192;
        d.dst_offset %= 8192;
        d.length %= 8192;
      }
    }
    ASSERT_TRUE((*eq)->Submit(ds));
    ASSERT_TRUE((*eq)->Reap(32).ok());
  }
  // Now the indices: a tail from nowhere.
  (*eq)->hdr->sq_tail.value.store(0x80000000u, std::memory_order_release);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((*eq)->error() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ((*eq)->error(), static_cast<std::uint32_t>(QueueError::kSqIndexCorrupt));
  // A second evil queue corrupts cq_head instead.
  auto eq2 = TestQueue::Make({});
  ASSERT_TRUE((*eq2)->Create(*evil).ok());
  Descriptor nops[64] = {};
  ASSERT_TRUE((*eq2)->Submit(nops));  // fills the CQ (64 entries), never reaped
  absl::SleepFor(absl::Milliseconds(50));
  (*eq2)->hdr->cq_head.value.store(12345, std::memory_order_release);
  ASSERT_TRUE((*eq2)->Submit(Descriptor{}) || true);
  (*eq2)->hdr->sq_tail.value.store(65, std::memory_order_release);
  while ((*eq2)->error() == 0 && absl::Now() < deadline + absl::Seconds(5)) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ((*eq2)->error(), static_cast<std::uint32_t>(QueueError::kCqIndexCorrupt));

  // The good client is unaffected.
  ASSERT_TRUE((*gq)->Submit(CopyDesc(9, (*gr)->handle, 0, (*gr)->handle, 4096, 4096)));
  auto done = (*gq)->Reap(1);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ((*done)[0].status, 0);
  EXPECT_EQ(std::memcmp((*gr)->data, (*gr)->data + 4096, 4096), 0);
  EXPECT_TRUE(ringd_->Running());
}

TEST_F(RingdTest, SigkilledClientMidBatchLeavesOthersServed) {
  Start();
  const std::string path = ringd_->socket_path();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A client that keeps ringd busy with large copies until it is killed.
    auto c = RawClient::Connect(path);
    if (!c.ok() || !(*c)->Hello("doomed").ok()) _exit(1);
    auto q = TestQueue::Make({});
    auto a = TestRegion::Make(1 << 20);
    auto b = TestRegion::Make(1 << 20);
    if (!(*q)->Create(**c).ok() || !(*a)->Register(**c).ok() || !(*b)->Register(**c).ok()) _exit(2);
    for (;;) {
      Descriptor ds[16];
      for (auto& d : ds) d = CopyDesc(0, (*a)->handle, 0, (*b)->handle, 0, 1 << 20);
      (void)(*q)->Submit(ds);
      (void)(*q)->Reap(16, absl::Seconds(60));
    }
  }
  auto c = Connect("survivor");
  ASSERT_NE(c, nullptr);
  absl::SleepFor(absl::Milliseconds(300));  // the child is mid-batch by now
  kill(child, SIGKILL);
  int st = 0;
  waitpid(child, &st, 0);
  TestQueue::Options o;
  ExerciseQueue(*c, o, 5);
  // ringd noticed the disconnect and released everything of the dead client.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  nlohmann::json j;
  while (absl::Now() < deadline) {
    auto stats = c->Stats();
    ASSERT_TRUE(stats.ok());
    j = nlohmann::json::parse(*stats);
    if (j["ringd"]["clients_connected"] == 1) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(j["ringd"]["clients_connected"], 1) << j.dump(2);
  EXPECT_TRUE(ringd_->Running());
}

TEST_F(RingdTest, EightClientsAtOnceEachSeeTheirOwnData) {
  Start({"--pollers=2"});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto c = RawClient::Connect(ringd_->socket_path());
      if (!c.ok() || !(*c)->Hello(absl::StrCat("client-", i)).ok()) return;
      TestQueue::Options o;
      o.doorbell = static_cast<wire::DoorbellMode>(i % 3);
      o.wait = static_cast<wire::CompletionWait>(i % 2);
      auto q = TestQueue::Make(o);
      auto a = TestRegion::Make(32768);
      auto b = TestRegion::Make(32768);
      if (!(*q)->Create(**c).ok() || !(*a)->Register(**c).ok() || !(*b)->Register(**c).ok()) return;
      // Under soft-RoCE in a TCG guest every op crawls: fewer rounds there.
      for (int round = 0; round < (kVerbs ? 3 : 20); ++round) {
        Pattern(**a, static_cast<std::uint32_t>(i * 1000 + round));
        Descriptor ds[2] = {CopyDesc(1, (*a)->handle, 0, (*b)->handle, 0, 32768),
                            ChecksumDesc(2, (*b)->handle, 0, 32768)};
        if (!(*q)->Submit(ds)) return;
        auto done = (*q)->Reap(2);
        if (!done.ok() || (*done)[0].status != 0 || (*done)[1].status != 0) return;
        if ((*done)[1].result != Fnv1a64((*a)->bytes(0, 32768))) return;
        if (std::memcmp((*a)->data, (*b)->data, 32768) != 0) return;
      }
      ok.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
}

TEST_F(RingdTest, StatsReplyListsClientsQueuesRegionsCounters) {
  Start();
  auto c = Connect("stats-client");
  ASSERT_NE(c, nullptr);
  TestQueue::Options o;
  o.doorbell = wire::DoorbellMode::kEventfd;
  auto q = TestQueue::Make(o);
  ASSERT_TRUE((*q)->Create(*c).ok());
  auto r = TestRegion::Make(8192);
  ASSERT_TRUE((*r)->Register(*c, ForkMode::kDontFork).ok());
  ASSERT_TRUE((*q)->Submit(FillDesc(1, (*r)->handle, 0, 8192, 1)));
  ASSERT_TRUE((*q)->Reap(1).ok());
  auto text = c->Stats();
  ASSERT_TRUE(text.ok()) << text.status();
  auto j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["ringd"]["backend"], PINRING_TEST_BACKEND);
  ASSERT_EQ(j["clients"].size(), 1u);
  const auto& cl = j["clients"][0];
  EXPECT_EQ(cl["pid"], getpid());
  EXPECT_EQ(cl["name"], "stats-client");
  EXPECT_EQ(cl["queues"][0]["doorbell"], "eventfd");
  EXPECT_EQ(cl["regions"][0]["fork_mode"], "dontfork");
  EXPECT_EQ(cl["regions"][0]["size"], 8192);
  EXPECT_EQ(cl["counters"]["ops"]["fill"], 1);
  EXPECT_EQ(cl["counters"]["bytes_moved"], 8192);
  EXPECT_GE(cl["counters"]["doorbells"].get<int>(), 1);
  EXPECT_EQ(j["global"]["ops"]["fill"], 1);
  if (kVerbs) {
    EXPECT_EQ(cl["regions"][0]["pinned_bytes"], 8192);
  }
}

TEST_F(RingdTest, SigtermNotifiesEveryClientAndExitsZero) {
  Start();
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  TestQueue::Options o;
  o.doorbell = wire::DoorbellMode::kEventfd;
  o.wait = wire::CompletionWait::kBlock;
  auto q = TestQueue::Make(o);
  ASSERT_TRUE((*q)->Create(*c).ok());
  auto rc = ringd_->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << ringd_->Stderr();
  auto msg = c->Recv(absl::Seconds(2));
  ASSERT_TRUE(msg.ok()) << msg.status();
  auto h = wire::ParseHeader(*msg, 0);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->type, static_cast<std::uint16_t>(MessageType::kShutdownNotice));
  EXPECT_EQ((*q)->error(), static_cast<std::uint32_t>(QueueError::kDaemonStopping));
  std::uint64_t v = 0;
  EXPECT_EQ(read((*q)->completion, &v, sizeof v), static_cast<ssize_t>(sizeof v))
      << "completion eventfd signalled";
}

TEST_F(RingdTest, StartupErrorsNameTheFix) {
  auto r = RingdProcess::Start({"--backend=cpu", "--socket=/nonexistent-dir/ringd.sock"},
                               absl::Seconds(120));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("pass --socket"), absl::string_view::npos) << r.status();
}

// `rdma -j res show mr` entries (all processes). -1 when the tool is unusable.
int CountMrs() {
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen("rdma -j res show mr 2>/dev/null", "r"), pclose);
  if (p == nullptr) return -1;
  std::string out;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), p.get())) out.append(buf.data(), n);
  auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return -1;
  return static_cast<int>(j.size());
}

TEST_F(RingdTest, KilledClientsMrsAreDeregistered) {
  if (!kVerbs) GTEST_SKIP() << "MRs exist only with --backend=verbs";
  Start();
  const int before = CountMrs();
  if (before < 0) GTEST_SKIP() << "`rdma -j res show mr` unavailable";
  const std::string path = ringd_->socket_path();
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto c = RawClient::Connect(path);
    if (!c.ok() || !(*c)->Hello("mr-holder").ok()) _exit(1);
    auto q = TestQueue::Make({});
    auto a = TestRegion::Make(65536);
    auto b = TestRegion::Make(65536, true);
    if (!(*q)->Create(**c).ok() || !(*a)->Register(**c).ok() ||
        !(*b)->Register(**c, ForkMode::kReadOnly).ok()) {
      _exit(2);
    }
    char ok = 'k';
    (void)!write(pipefd[1], &ok, 1);
    pause();
    _exit(0);
  }
  close(pipefd[1]);
  char ok = 0;
  ASSERT_EQ(read(pipefd[0], &ok, 1), 1);
  close(pipefd[0]);
  EXPECT_EQ(CountMrs(), before + 3) << "queue ring + two regions registered";
  kill(child, SIGKILL);
  int st = 0;
  waitpid(child, &st, 0);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  int now = CountMrs();
  while (now != before && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    now = CountMrs();
  }
  EXPECT_EQ(now, before) << "the killed client's MRs are gone";
}

}  // namespace
}  // namespace pinring::testing
