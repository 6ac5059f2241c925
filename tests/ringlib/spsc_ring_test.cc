// Ring index arithmetic: wrap-around, full and empty, batches that cross the end, and the
// corruption checks a consumer of untrusted indices relies on.
#include "pinring/spsc_ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace pinring {
namespace {

struct TestRing {
  explicit TestRing(std::uint32_t entries, std::uint32_t start = 0)
      : slots(entries), tail(start), head(start),
        producer(slots.data(), entries, &tail, &head, start),
        consumer(slots.data(), entries, &head, &tail, start) {}
  std::vector<std::uint64_t> slots;
  std::atomic<std::uint32_t> tail;
  std::atomic<std::uint32_t> head;
  RingProducer<std::uint64_t> producer;
  RingConsumer<std::uint64_t> consumer;
};

TEST(SpscRing, EmptyRingHasNothingToRead) {
  TestRing r(8);
  EXPECT_EQ(r.consumer.Peek(8), 0u);
  EXPECT_EQ(r.producer.Reserve(8), 8u);
}

TEST(SpscRing, FullRingRefusesMore) {
  TestRing r(4);
  ASSERT_EQ(r.producer.Reserve(4), 4u);
  for (std::uint32_t i = 0; i < 4; ++i) r.producer.Slot(i) = i;
  r.producer.Commit(4);
  EXPECT_EQ(r.producer.Reserve(1), 0u);
  ASSERT_EQ(r.consumer.Peek(10), 4u);
  r.consumer.Release(1);
  EXPECT_EQ(r.producer.Reserve(4), 1u) << "one slot freed, one slot reservable";
}

TEST(SpscRing, BatchCrossingTheEndKeepsOrder) {
  TestRing r(8);
  // Advance both indices to 6 so a batch of 5 wraps after two slots.
  ASSERT_EQ(r.producer.Reserve(6), 6u);
  r.producer.Commit(6);
  ASSERT_EQ(r.consumer.Peek(6), 6u);
  r.consumer.Release(6);
  ASSERT_EQ(r.producer.Reserve(5), 5u);
  for (std::uint32_t i = 0; i < 5; ++i) r.producer.Slot(i) = 100 + i;
  r.producer.Commit(5);
  ASSERT_EQ(r.consumer.Peek(8), 5u);
  for (std::uint32_t i = 0; i < 5; ++i) EXPECT_EQ(r.consumer.CopyOut(i), 100 + i);
  EXPECT_EQ(r.slots[6], 100u);
  EXPECT_EQ(r.slots[0], 102u) << "third entry of the batch wrapped to slot 0";
}

TEST(SpscRing, FreeRunningIndicesWrapAt32Bits) {
  const std::uint32_t start = 0xFFFFFFFEu;
  TestRing r(4, start);
  ASSERT_EQ(r.producer.Reserve(4), 4u);
  for (std::uint32_t i = 0; i < 4; ++i) r.producer.Slot(i) = i;
  r.producer.Commit(4);
  EXPECT_EQ(r.tail.load(), 2u) << "tail wrapped past 2^32";
  ASSERT_EQ(r.consumer.Peek(4), 4u);
  for (std::uint32_t i = 0; i < 4; ++i) EXPECT_EQ(r.consumer.Slot(i), i);
  r.consumer.Release(4);
  EXPECT_EQ(r.producer.Reserve(4), 4u);
}

TEST(SpscRing, ConsumerDetectsTailMoreThanARingAhead) {
  TestRing r(8);
  r.tail.store(9);  // hostile producer claims 9 entries in an 8-entry ring
  EXPECT_EQ(r.consumer.Peek(1), 0u);
  EXPECT_TRUE(r.consumer.corrupt());
  r.tail.store(1);  // corruption latches: the queue is dead
  EXPECT_EQ(r.consumer.Peek(1), 0u);
}

TEST(SpscRing, ConsumerDetectsTailBehindHead) {
  TestRing r(8, 100);
  r.tail.store(99);
  EXPECT_EQ(r.consumer.Peek(1), 0u);
  EXPECT_TRUE(r.consumer.corrupt());
}

TEST(SpscRing, ProducerDetectsHeadAheadOfTail) {
  TestRing r(8);
  ASSERT_EQ(r.producer.Reserve(8), 8u);
  r.producer.Commit(8);
  r.head.store(12);  // hostile consumer claims to have read entries never produced
  EXPECT_EQ(r.producer.Reserve(1), 0u);
  EXPECT_TRUE(r.producer.corrupt());
}

TEST(SpscRing, ReserveReadsHeadOnlyWhenCacheIsShort) {
  TestRing r(8);
  ASSERT_EQ(r.producer.Reserve(2), 2u);
  r.producer.Commit(2);
  // A bogus head would be caught if it were read; the cache still says 6 free, so it is not.
  r.head.store(1000);
  EXPECT_EQ(r.producer.Reserve(6), 6u);
  EXPECT_FALSE(r.producer.corrupt());
}

TEST(SpscRing, TwoThreadsTransferEverythingInOrder) {
  TestRing r(64);
  constexpr std::uint64_t kCount = 200000;
  // The consumer records the first slot out of order and keeps consuming: an ASSERT inside the
  // thread would only return from the lambda, and the producer would then wait forever for room.
  std::uint64_t first_bad = kCount, bad_value = 0;
  std::thread consumer([&] {
    std::uint64_t expect = 0;
    while (expect < kCount) {
      std::uint32_t n = r.consumer.Peek(32);
      for (std::uint32_t i = 0; i < n; ++i, ++expect) {
        if (r.consumer.Slot(i) != expect && first_bad == kCount) {
          first_bad = expect;
          bad_value = r.consumer.Slot(i);
        }
      }
      r.consumer.Release(n);
    }
  });
  std::uint64_t next = 0;
  while (next < kCount) {
    std::uint32_t n = r.producer.Reserve(static_cast<std::uint32_t>(std::min<std::uint64_t>(17, kCount - next)));
    for (std::uint32_t i = 0; i < n; ++i) r.producer.Slot(i) = next++;
    r.producer.Commit(n);
  }
  consumer.join();
  EXPECT_EQ(first_bad, kCount) << "slot " << first_bad << " held " << bad_value;
  EXPECT_FALSE(r.consumer.corrupt());
}

TEST(RingFormat, LayoutPutsRingsOnPageBoundaries) {
  const QueueLayout l = ComputeQueueLayout(256, 512);
  EXPECT_EQ(l.sq_offset, kPageSize);
  EXPECT_EQ(l.cq_offset % kPageSize, 0u);
  EXPECT_GE(l.cq_offset, l.sq_offset + 256 * sizeof(Descriptor));
  EXPECT_GE(l.total_size, l.cq_offset + 512 * sizeof(Completion));
  EXPECT_FALSE(IsValidRingSize(3));
  EXPECT_FALSE(IsValidRingSize(0));
  EXPECT_FALSE(IsValidRingSize(kMaxRingEntries * 2));
  EXPECT_TRUE(IsValidRingSize(1024));
}

TEST(RingFormat, Fnv1aMatchesPublishedVector) {
  const char* s = "a";
  EXPECT_EQ(Fnv1a64(std::as_bytes(std::span(s, 1))), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64({}), kFnv1a64Seed);
}

// The consumer of an untrusted ring (ringd's view of a client's submissions) has no in-place
// access at all, only a copy; the trusted one (a client's view of its completions) keeps it.
template <typename T>
concept HasInPlaceSlot = requires(const T& t) { t.Slot(0u); };
static_assert(!HasInPlaceSlot<SubmissionConsumer>, "an untrusted entry is only copied out");
static_assert(HasInPlaceSlot<CompletionConsumer>);

// A hostile producer keeps rewriting a slot, word by word, while the consumer copies it out: each
// copied word is one the producer wrote (never a mix within a word), and the copy is stable once
// taken. The words are read with atomic loads: under ThreadSanitizer (scripts/test.sh's TSan
// stage) a plain memcpy of the slot is reported as a data race with the scribbler's stores.
TEST(SpscRing, UntrustedCopyOutReadsEachWordOnceWhileTheProducerScribbles) {
  std::vector<Descriptor> slots(4);
  std::atomic<std::uint32_t> tail{1}, head{0};
  SubmissionConsumer consumer(slots.data(), 4, &head, &tail, 0);
  ASSERT_EQ(consumer.Peek(1), 1u);
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    auto* words = reinterpret_cast<std::uint64_t*>(&slots[0]);
    for (std::uint64_t v = 0; !stop.load(std::memory_order_relaxed); ++v) {
      for (int k = 0; k < 8; ++k) {
        // Every word holds (its index, a counter) in both halves: a torn word would differ.
        const std::uint64_t x = (v & 0xffffff) | (static_cast<std::uint64_t>(k) << 24);
        __atomic_store_n(&words[k], x | (x << 32), __ATOMIC_RELAXED);
      }
    }
  });
  int torn = 0;
  for (int i = 0; i < 20000; ++i) {
    const Descriptor d = consumer.CopyOut(0);
    std::uint64_t w[8];
    std::memcpy(w, &d, sizeof d);
    for (int k = 0; k < 8; ++k) {
      if ((w[k] >> 32) != (w[k] & 0xffffffff)) ++torn;
      if (w[k] != 0 && ((w[k] >> 24) & 0xff) != static_cast<std::uint64_t>(k)) ++torn;
    }
  }
  stop = true;
  scribbler.join();
  EXPECT_EQ(torn, 0);
}

}  // namespace
}  // namespace pinring
