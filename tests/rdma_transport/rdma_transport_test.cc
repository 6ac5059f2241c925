// The rdma transport in one host: client and ringd's listener on the same RDMA device (soft-RoCE
// loopback in the harness guest). Data is verified end to end by the client; every bad-input case
// checks that another client keeps being served.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "verbs/rdma_channel.h"
#include "wire/rdma_wire.h"
#include "rdma_test_util.h"

namespace pinring {
namespace {

using testing::Checksum;
using testing::DataCheck;
using testing::Fill;
using testing::Nop;
using testing::QueueOptionsFor;
using testing::StartListener;

class RdmaTransport : public ::testing::Test {
 protected:
  void SetUp() override {
    PINRING_REQUIRE_RDMA_DEVICE();
    listener_ = StartListener();
    ASSERT_NE(listener_, nullptr);
  }
  std::unique_ptr<RdmaQueue> ConnectOrDie(RdmaQueueOptions o) {
    auto q = RdmaQueue::Connect(o);
    EXPECT_TRUE(q.ok()) << q.status();
    return q.ok() ? std::move(*q) : nullptr;
  }
  std::unique_ptr<ringd::RdmaListener> listener_;
};

TEST_F(RdmaTransport, LoopbackDataVerifiedSpinAndSleep) {
  for (auto wait : {wire::CompletionWait::kSpin, wire::CompletionWait::kBlock}) {
    auto o = QueueOptionsFor(*listener_);
    o.completion_wait = wait;
    auto q = ConnectOrDie(o);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(DataCheck(*q, 256 * 1024, 7 + static_cast<int>(wait)), "");
  }
}

TEST_F(RdmaTransport, BatchesWrapTheRing) {
  auto q = ConnectOrDie(QueueOptionsFor(*listener_, 8));
  ASSERT_NE(q, nullptr);
  auto r = q->CreateRegion(4096);
  ASSERT_TRUE(r.ok()) << r.status();
  std::uint64_t next = 0, seen = 0;
  for (int round = 0; round < 6; ++round) {  // 6 x 8 descriptors through an 8-entry ring
    std::vector<Descriptor> batch;
    for (int i = 0; i < 7; ++i) batch.push_back(Nop(next++));
    batch.push_back(Fill((*r)->handle(), 0, 4096, static_cast<std::uint8_t>(round), next++));
    ASSERT_TRUE(q->Submit(batch).ok());
    EXPECT_EQ(q->Submit(batch).code(), absl::StatusCode::kResourceExhausted);  // ring full
    Completion c[8];
    std::size_t got = 0;
    while (got < 8) {
      auto n = q->Reap(absl::MakeSpan(c + got, 8 - got), absl::Seconds(20));
      ASSERT_TRUE(n.ok()) << n.status();
      ASSERT_GT(*n, 0u) << "timed out";
      got += *n;
    }
    for (const Completion& x : c) {
      EXPECT_EQ(x.user_data, seen++);  // in submission order
      EXPECT_EQ(x.status, 0);
    }
    EXPECT_EQ((*r)->data()[4095], std::byte{static_cast<std::uint8_t>(round)});
  }
}

TEST_F(RdmaTransport, ValidationStatusesMatchTheShmTransport) {
  auto q = ConnectOrDie(QueueOptionsFor(*listener_));
  ASSERT_NE(q, nullptr);
  auto rw = q->CreateRegion(8192);
  auto ro = q->CreateRegion(8192, ForkMode::kReadOnly);
  ASSERT_TRUE(rw.ok() && ro.ok());
  auto status_of = [&](Descriptor d) {
    auto c = q->SubmitAndWait(d, absl::Seconds(20));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? static_cast<CompletionStatus>(c->status) : CompletionStatus::kDeviceError;
  };
  Descriptor bad = Nop(1);
  bad.opcode = kRdmaOpcodeCount;  // the first opcode the rdma transport does not know
  EXPECT_EQ(status_of(bad), CompletionStatus::kBadOpcode);
  EXPECT_EQ(status_of(Fill(999, 0, 1, 0)), CompletionStatus::kUnknownRegion);
  EXPECT_EQ(status_of(Fill((*rw)->handle(), 8000, 400, 0)), CompletionStatus::kOutOfBounds);
  EXPECT_EQ(status_of(Fill((*rw)->handle(), ~0ull, 2, 0)), CompletionStatus::kOutOfBounds);
  EXPECT_EQ(status_of(Fill((*ro)->handle(), 0, 16, 0)), CompletionStatus::kReadOnlyRegion);
  auto sum = q->SubmitAndWait(Checksum((*ro)->handle(), 0, 8192), absl::Seconds(20));
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->result, Fnv1a64((*ro)->bytes()));  // a read-only region is readable
  // Revoked grant: the handle is gone in ringd; the connection lives on.
  const std::uint32_t h = (*rw)->handle();
  ASSERT_TRUE(q->DestroyRegion(*rw).ok());
  EXPECT_EQ(status_of(Fill(h, 0, 1, 0)), CompletionStatus::kUnknownRegion);
  EXPECT_EQ(status_of(Nop(2)), CompletionStatus::kOk);
}

// The listener's counters, once they reach `descriptors` (Count() publishes them at once, but the
// loop thread may still be executing the last batch's bookkeeping).
ringd::RdmaListenerStats StatsWhenExecuted(const ringd::RdmaListener& l, std::uint64_t descriptors) {
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  ringd::RdmaListenerStats s = l.stats();
  while (s.descriptors < descriptors && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
    s = l.stats();
  }
  return s;
}

TEST_F(RdmaTransport, InlineAndPulledBatchesGiveTheSameResults) {
  // Batches of 1..12 FILLs + a CHECKSUM of what they wrote, through a queue that sends small
  // batches inline (up to 8 of them) and one that pulls every batch: same completions, same bytes; the
  // listener counts inline exactly the batches of at most 8 of the first queue.
  std::uint64_t expected_inline = 0, total = listener_->stats().descriptors;
  const std::uint64_t inline_before = listener_->stats().inline_descriptors;
  for (std::uint32_t max_inline : {8u, 0u}) {
    auto o = QueueOptionsFor(*listener_, 16);
    o.max_inline_descriptors = max_inline;
    auto q = ConnectOrDie(o);
    ASSERT_NE(q, nullptr);
    auto r = q->CreateRegion(16 * 256);
    ASSERT_TRUE(r.ok()) << r.status();
    std::uint64_t ud = 0;
    for (std::uint32_t n = 1; n <= 12; ++n) {
      std::vector<Descriptor> batch;
      for (std::uint32_t i = 0; i + 1 < n; ++i) {
        batch.push_back(Fill((*r)->handle(), i * 256, 256, static_cast<std::uint8_t>(n + i), ud++));
      }
      batch.push_back(Checksum((*r)->handle(), 0, 16 * 256, ud++));
      ASSERT_TRUE(q->Submit(batch).ok());
      std::vector<Completion> c(n);
      std::size_t got = 0;
      while (got < n) {
        auto k = q->Reap(absl::MakeSpan(c).subspan(got), absl::Seconds(20));
        ASSERT_TRUE(k.ok()) << k.status();
        ASSERT_GT(*k, 0u) << "timed out, batch of " << n << ", max_inline " << max_inline;
        got += *k;
      }
      for (std::uint32_t i = 0; i < n; ++i) {
        EXPECT_EQ(c[i].user_data, batch[i].user_data) << "batch " << n;
        EXPECT_EQ(c[i].status, 0) << "batch " << n << " descriptor " << i;
      }
      EXPECT_EQ(c[n - 1].result, Fnv1a64((*r)->bytes())) << "batch " << n;
      for (std::uint32_t i = 0; i + 1 < n; ++i) {
        EXPECT_EQ((*r)->data()[i * 256 + 255], std::byte{static_cast<std::uint8_t>(n + i)});
      }
      total += n;
      if (max_inline != 0 && n <= max_inline) expected_inline += n;
    }
  }
  const ringd::RdmaListenerStats s = StatsWhenExecuted(*listener_, total);
  EXPECT_EQ(s.descriptors, total);
  EXPECT_EQ(s.inline_descriptors - inline_before, expected_inline);
}

TEST_F(RdmaTransport, InlineDoorbellBehindAPulledOneKeepsTheOrder) {
  // A pull doorbell (the descriptor only in the ring) right before an inline one: ringd may see
  // both in one receive batch, when the inline descriptors must wait for the READ of the
  // earlier one. Either way, completions come in submission order.
  auto q = ConnectOrDie(QueueOptionsFor(*listener_, 16));
  ASSERT_NE(q, nullptr);
  for (std::uint64_t round = 0; round < 40; ++round) {
    *q->SqSlotForTesting(q->sq_tail()) = Nop(round * 10);
    q->AdvanceTailForTesting(1);
    ASSERT_TRUE(q->RingDoorbellForTesting(q->sq_tail()).ok());
    ASSERT_TRUE(q->Submit({Nop(round * 10 + 1), Nop(round * 10 + 2)}).ok());
    Completion c[3];
    std::size_t got = 0;
    while (got < 3) {
      auto k = q->Reap(absl::MakeSpan(c + got, 3 - got), absl::Seconds(20));
      ASSERT_TRUE(k.ok()) << k.status();
      ASSERT_GT(*k, 0u) << "timed out in round " << round;
      got += *k;
    }
    for (std::uint64_t i = 0; i < 3; ++i) EXPECT_EQ(c[i].user_data, round * 10 + i);
  }
}

// --- bad input: each ends that connection only --------------------------------------------------

// A healthy client beside the misbehaving one; it must keep being served.
class RdmaBadInput : public RdmaTransport {
 protected:
  void SetUp() override {
    RdmaTransport::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    good_ = ConnectOrDie(QueueOptionsFor(*listener_));
    ASSERT_NE(good_, nullptr);
    ASSERT_EQ(DataCheck(*good_, 16 * 1024, 1), "");
    bad_ = ConnectOrDie(QueueOptionsFor(*listener_));
    ASSERT_NE(bad_, nullptr);
  }
  // The bad client sees an error within `timeout`; the good one still moves verified data.
  void ExpectBadFailsGoodServed(absl::Duration timeout = absl::Seconds(30)) {
    Completion c;
    const absl::Time deadline = absl::Now() + timeout;
    absl::Status st;
    while (absl::Now() < deadline) {
      auto n = bad_->Reap(absl::MakeSpan(&c, 1), absl::Milliseconds(200));
      if (!n.ok()) {
        st = n.status();
        break;
      }
    }
    EXPECT_FALSE(st.ok()) << "the misbehaving client got no error";
    std::fprintf(stderr, "bad client's error: %s\n", st.ToString().c_str());
    EXPECT_EQ(DataCheck(*good_, 16 * 1024, 2), "");
    auto again = RdmaQueue::Connect(QueueOptionsFor(*listener_));  // new clients still welcome
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(DataCheck(**again, 4096, 3), "");
    EXPECT_GE(listener_->stats().failed, 1u);
  }
  std::unique_ptr<RdmaQueue> good_, bad_;
};

TEST_F(RdmaBadInput, GarbageMessage) {
  std::vector<std::byte> junk(80);
  for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<std::byte>(i * 37 + 11);
  ASSERT_TRUE(bad_->SendRawForTesting(junk).ok());
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaBadInput, ShortMessage) {
  std::vector<std::byte> junk(7, std::byte{0x42});
  ASSERT_TRUE(bad_->SendRawForTesting(junk).ok());
  ExpectBadFailsGoodServed();
}

// An inline doorbell (rdma_wire.h) with `count` in its length, `tail` in its value and `carried`
// descriptors behind it.
std::vector<std::byte> InlineDoorbell(std::uint64_t count, std::uint32_t tail,
                                      std::uint32_t carried) {
  rdma::ControlMessage m{};
  m.magic = rdma::kRdmaMagic;
  m.type = static_cast<std::uint16_t>(rdma::ControlType::kDoorbellInline);
  m.value = tail;
  m.length = count;
  std::vector<std::byte> bytes(rdma::InlineDoorbellBytes(carried));
  std::memcpy(bytes.data(), &m, sizeof m);
  for (std::uint32_t i = 0; i < carried; ++i) {
    const Descriptor d = Nop(i);
    std::memcpy(bytes.data() + sizeof m + i * sizeof d, &d, sizeof d);
  }
  return bytes;
}

TEST_F(RdmaBadInput, InlineDoorbellCountDisagreesWithItsLength) {
  ASSERT_TRUE(bad_->SendRawForTesting(InlineDoorbell(3, 3, 2)).ok());
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaBadInput, InlineDoorbellCountAboveTheMaximum) {
  // One more claimed than the maximum, the maximum carried (one more would not fit ringd's
  // receive slot: the QP itself would fail).
  constexpr std::uint32_t kMax = rdma::kMaxInlineDescriptors;
  ASSERT_TRUE(bad_->SendRawForTesting(InlineDoorbell(kMax + 1, kMax + 1, kMax)).ok());
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaBadInput, InlineDoorbellThatSkipsDescriptors) {
  // Well formed, but it carries [1, 2) while ringd expects descriptor 0 next.
  ASSERT_TRUE(bad_->SendRawForTesting(InlineDoorbell(1, 2, 1)).ok());
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaBadInput, WriteWithImmediateInsteadOfASend) {
  ASSERT_TRUE(bad_->WriteWithImmForTesting().ok());
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaBadInput, TailBeyondTheRing) {
  // Untrusted tail: head + sq_entries + 1 names descriptors that cannot exist.
  ASSERT_TRUE(bad_->RingDoorbellForTesting(bad_->sq_entries() + 1).ok());
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaBadInput, RingDeregisteredUnderRingd) {
  ASSERT_TRUE(bad_->DeregisterRingsForTesting().ok());
  // A pull doorbell for a descriptor written into the (now unregistered) ring: ringd's RDMA
  // READ must fail.
  *bad_->SqSlotForTesting(bad_->sq_tail()) = Nop(1);
  bad_->AdvanceTailForTesting(1);
  EXPECT_TRUE(bad_->RingDoorbellForTesting(bad_->sq_tail()).ok());
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaBadInput, CompletionRingDeregisteredUnderAnInlineDoorbell) {
  // One descriptor travels inline: ringd READs nothing, and its WRITE_WITH_IMM of the completion
  // into the deregistered CQ is what fails.
  ASSERT_TRUE(bad_->DeregisterRingsForTesting().ok());
  EXPECT_TRUE(bad_->Submit({Nop(1)}).ok());
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaBadInput, RevokedRkeyOfAGrantedRegion) {
  auto r = bad_->CreateRegion(8192);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(bad_->RevokeRegionMrForTesting(*r).ok());  // ringd still holds the grant
  EXPECT_TRUE(bad_->Submit({Fill((*r)->handle(), 0, 8192, 1)}).ok());
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaBadInput, DoorbellFlood) {
  // Doorbells that bring nothing new, as fast as the QP takes them.
  for (int i = 0; i < 3000; ++i) {
    if (!bad_->RingDoorbellForTesting(0).ok()) break;
    if (i % 16 == 15) {
      Completion c;
      if (!bad_->Reap(absl::MakeSpan(&c, 1), absl::ZeroDuration()).ok()) break;
    }
  }
  ExpectBadFailsGoodServed();
}

TEST_F(RdmaTransport, GarbageConnectRequestIsRejected) {
  // A peer that is not a pinring client: wrong private data in its REQ.
  auto ch = rdma::RdmaChannel::Resolve(testing::SelfRdmaAddress(), listener_->port(),
                                       absl::Seconds(10));
  ASSERT_TRUE(ch.ok()) << ch.status();
  auto dev = VerbsDevice::Adopt((*ch)->verbs(), (*ch)->port_num());
  ASSERT_TRUE(dev.ok()) << dev.status();
  ASSERT_TRUE((*ch)->CreateQp(**dev, {}).ok());
  std::vector<std::byte> junk(48, std::byte{0x5a});
  std::string reply;
  absl::Status st = (*ch)->Connect(junk, absl::Seconds(10), &reply);
  EXPECT_FALSE(st.ok());
  (*ch)->DestroyQp();
  dev->reset();
  // And the listener still serves a real client.
  auto q = ConnectOrDie(QueueOptionsFor(*listener_));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(DataCheck(*q, 8192, 4), "");
  EXPECT_GE(listener_->stats().rejected, 1u);
}

TEST(RdmaHandshake, HalfOpenConnectionIsDroppedAfterTheHandshakeTimeout) {
  // A client that sends a well-formed REQ and never reads its rdma_cm events never sends the RTU.
  // ringd accepted it and holds a QP and staging MRs for it: it must drop it after the handshake
  // timeout, not when the CM gives up on its REP a minute later. (Found by pinring-soak's
  // "connection flood, then SIGKILL mid-batch" round.)
  PINRING_REQUIRE_RDMA_DEVICE();
  ringd::RdmaListenerOptions o;
  o.handshake_timeout = absl::Seconds(1);
  auto listener = StartListener(o);
  ASSERT_NE(listener, nullptr);
  auto ch = rdma::RdmaChannel::Resolve(testing::SelfRdmaAddress(), listener->port(),
                                       absl::Seconds(10));
  ASSERT_TRUE(ch.ok()) << ch.status();
  auto dev = VerbsDevice::Adopt((*ch)->verbs(), (*ch)->port_num());
  ASSERT_TRUE(dev.ok()) << dev.status();
  ASSERT_TRUE((*ch)->CreateQp(**dev, {}).ok());
  rdma::ConnectRequest req{};
  req.magic = rdma::kRdmaMagic;
  req.version = rdma::kRdmaVersion;
  req.sq_entries = 16;
  req.cq_entries = 16;
  req.sq_addr = 0x10000;
  req.cq_addr = 0x20000;
  req.sq_rkey = 1;
  req.cq_rkey = 2;
  req.recv_depth = 4;
  ASSERT_TRUE((*ch)->StartConnect(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(&req),
                                                      sizeof req)).ok());
  const absl::Time t0 = absl::Now();
  while (listener->stats().accepted == 0 && absl::Now() - t0 < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(listener->stats().accepted, 1u) << "ringd never accepted the REQ";
  // Dropped well before the CM's own REP timeout (about 16 retries of 4 s).
  while (listener->stats().connected != 0 && absl::Now() - t0 < absl::Seconds(15)) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(listener->stats().connected, 0u) << "the half-open connection is still held";
  EXPECT_EQ(listener->stats().failed, 1u);
  (*ch)->DestroyQp();
  dev->reset();
  // And a real client still gets in and is served.
  auto q = RdmaQueue::Connect(QueueOptionsFor(*listener));
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(DataCheck(**q, 8192, 5), "");
}

TEST_F(RdmaTransport, ConnectToNothingFailsCleanly) {
  auto o = QueueOptionsFor(*listener_);
  o.port = static_cast<std::uint16_t>(listener_->port() + 1);
  o.timeout = absl::Seconds(10);
  auto q = RdmaQueue::Connect(o);
  EXPECT_FALSE(q.ok());
}

}  // namespace
}  // namespace pinring
