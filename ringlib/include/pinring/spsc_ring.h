// Single-producer single-consumer ring views over shared memory laid out by ring_format.h.
// Header-only and allocation-free: this is the hot path of both ringlib and ringd.
//
// Each side keeps its own index privately and caches the other side's index, re-reading the
// shared copy only when the cache says the ring is full (producer) or empty (consumer). That keeps
// the common case to one cache-line transfer per batch in each direction.
//
// Either side may be untrusted (ringd consumes the client's submission ring and produces into the
// client's completion ring). So every index read from shared memory is checked: if the other side's
// index implies more entries than the ring holds, the view latches `corrupt()` and refuses to move.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "pinring/ring_format.h"

namespace pinring {

// The CPU's spin-wait hint (x86 PAUSE, arm64 YIELD), for loops that poll a ring index: it frees
// pipeline resources for an SMT sibling and avoids a memory-order flush when the index changes.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

namespace internal {
// Entries per 64-byte cache line (1 for a descriptor, 2 for a completion): prefetch strides.
template <typename Entry>
inline constexpr std::uint32_t EntriesPerLine() {
  return sizeof(Entry) >= 64 ? 1 : static_cast<std::uint32_t>(64 / sizeof(Entry));
}
}  // namespace internal

template <typename Entry>
class RingProducer {
 public:
  RingProducer() = default;
  // `slots` has `entries` (a power of two) entries. `tail` is ours to publish, `head` is the
  // consumer's. `tail_start` is the index to continue from (0 for a new ring).
  RingProducer(Entry* slots, std::uint32_t entries, std::atomic<std::uint32_t>* tail,
               const std::atomic<std::uint32_t>* head, std::uint32_t tail_start = 0)
      : slots_(slots),
        mask_(entries - 1),
        entries_(entries),
        tail_(tail_start),
        cached_head_(tail_start),
        shared_tail_(tail),
        shared_head_(head) {}

  // Returns how many of `want` slots can be filled now (0 when full or corrupt). Reads the
  // consumer's head only when the cached value cannot satisfy `want`.
  [[nodiscard]] std::uint32_t Reserve(std::uint32_t want) {
    std::uint32_t free_slots = entries_ - (tail_ - cached_head_);
    if (free_slots < want && !corrupt_) {
      // Acquire pairs with the consumer's release store of head: the consumer has finished
      // reading every slot before that head, so we may overwrite them.
      std::uint32_t head = shared_head_->load(std::memory_order_acquire);
      // Untrusted: a head beyond our tail, or more than a ring behind it, is impossible for an
      // honest consumer. Unsigned wrap makes both cases show up as "used > entries".
      if (static_cast<std::uint32_t>(tail_ - head) > entries_) {
        corrupt_ = true;
        return 0;
      }
      cached_head_ = head;
      free_slots = entries_ - (tail_ - cached_head_);
    }
    if (corrupt_) return 0;
    return free_slots < want ? free_slots : want;
  }

  // The i-th slot after the last committed one. REQUIRES: i < the last Reserve() result.
  Entry& Slot(std::uint32_t i) { return slots_[(tail_ + i) & mask_]; }

  // Hints the CPU to fetch the next `n` slots for writing, all at once, before a batch fills
  // them one by one: the lines were last touched by the consumer's core, and overlapping their
  // transfers beats paying for them in sequence. A hint only: no memory-model effect.
  void PrefetchForWrite(std::uint32_t n) const {
    for (std::uint32_t i = 0; i < n; i += internal::EntriesPerLine<Entry>()) {
      __builtin_prefetch(&slots_[(tail_ + i) & mask_], /*rw=*/1, /*locality=*/3);
    }
  }

  // Publishes `n` filled slots. REQUIRES: n <= the last Reserve() result.
  void Commit(std::uint32_t n) {
    tail_ += n;
    // Release: the consumer must see the slot contents written above before it sees the new tail.
    shared_tail_->store(tail_, std::memory_order_release);
  }

  // Entries the consumer has not yet released, as of the last head read.
  std::uint32_t InFlightCached() const { return tail_ - cached_head_; }
  std::uint32_t tail() const { return tail_; }
  std::uint32_t entries() const { return entries_; }
  bool corrupt() const { return corrupt_; }

 private:
  Entry* slots_ = nullptr;
  std::uint32_t mask_ = 0;
  std::uint32_t entries_ = 0;
  std::uint32_t tail_ = 0;         // private copy: the only truth about what we produced
  std::uint32_t cached_head_ = 0;  // consumer's head as last read
  bool corrupt_ = false;
  std::atomic<std::uint32_t>* shared_tail_ = nullptr;
  const std::atomic<std::uint32_t>* shared_head_ = nullptr;
};

namespace internal {

// What every consumer does: find out how many entries are ready, and give them back. The two
// consumers below differ in how they may read an entry.
template <typename Entry>
class ConsumerBase {
 public:
  ConsumerBase() = default;
  ConsumerBase(const Entry* slots, std::uint32_t entries, std::atomic<std::uint32_t>* head,
               const std::atomic<std::uint32_t>* tail, std::uint32_t head_start = 0)
      : slots_(slots),
        mask_(entries - 1),
        entries_(entries),
        head_(head_start),
        cached_tail_(head_start),
        shared_head_(head),
        shared_tail_(tail) {}

  // Returns how many entries (at most `max`) are ready to read (0 when empty or corrupt). Reads
  // the producer's tail only when the cached value shows fewer than `max` ready.
  [[nodiscard]] std::uint32_t Peek(std::uint32_t max) {
    std::uint32_t ready = cached_tail_ - head_;
    if (ready < max && !corrupt_) {
      // Acquire pairs with the producer's release store of tail: slot contents before that tail
      // are visible once we see it.
      std::uint32_t tail = shared_tail_->load(std::memory_order_acquire);
      // Untrusted: an honest producer is never more than a ring ahead of us, nor behind us.
      if (static_cast<std::uint32_t>(tail - head_) > entries_) {
        corrupt_ = true;
        return 0;
      }
      cached_tail_ = tail;
      ready = cached_tail_ - head_;
    }
    if (corrupt_) return 0;
    return ready < max ? ready : max;
  }

  // Hints the CPU to fetch the next `n` unread slots at once (see RingProducer::PrefetchForWrite).
  // REQUIRES: n <= the last Peek() result. A hint only: it orders nothing.
  void Prefetch(std::uint32_t n) const {
    for (std::uint32_t i = 0; i < n; i += internal::EntriesPerLine<Entry>()) {
      __builtin_prefetch(&slots_[(head_ + i) & mask_], /*rw=*/0, /*locality=*/3);
    }
  }

  // Gives `n` read entries back to the producer. REQUIRES: n <= the last Peek() result.
  void Release(std::uint32_t n) {
    head_ += n;
    // Release: our reads of those slots happen before the producer may reuse them.
    shared_head_->store(head_, std::memory_order_release);
  }

  std::uint32_t head() const { return head_; }
  std::uint32_t entries() const { return entries_; }
  bool corrupt() const { return corrupt_; }

 protected:
  const Entry* slot(std::uint32_t i) const { return &slots_[(head_ + i) & mask_]; }

 private:
  const Entry* slots_ = nullptr;
  std::uint32_t mask_ = 0;
  std::uint32_t entries_ = 0;
  std::uint32_t head_ = 0;         // private copy: the only truth about what we consumed
  std::uint32_t cached_tail_ = 0;  // producer's tail as last read
  bool corrupt_ = false;
  std::atomic<std::uint32_t>* shared_head_ = nullptr;
  const std::atomic<std::uint32_t>* shared_tail_ = nullptr;
};

}  // namespace internal

// The consumer of a ring whose producer is trusted (a client reading the completions ringd
// wrote): entries may be read in place.
template <typename Entry>
class RingConsumer : public internal::ConsumerBase<Entry> {
 public:
  using internal::ConsumerBase<Entry>::ConsumerBase;

  // The i-th unread entry, in place. REQUIRES: i < the last Peek() result.
  const Entry& Slot(std::uint32_t i) const { return *this->slot(i); }

  // A copy of the i-th unread entry.
  Entry CopyOut(std::uint32_t i) const {
    Entry e;
    std::memcpy(&e, this->slot(i), sizeof(Entry));
    return e;
  }
};

// The consumer of a ring whose producer is NOT trusted (ringd reading a client's submissions):
// the producer may keep scribbling over a slot while it is read. The only access is CopyOut, a
// private copy made of word-sized atomic loads, as the kernel's READ_ONCE does for io_uring
// SQEs: each word is read exactly once, so the compiler can never re-read a field after it was
// checked (no time-of-check/time-of-use), and a torn entry is merely an invalid one that
// validation rejects. There is deliberately no in-place access.
template <typename Entry>
class UntrustedRingConsumer : public internal::ConsumerBase<Entry> {
  static_assert(std::is_trivially_copyable_v<Entry> && sizeof(Entry) % 8 == 0 &&
                    alignof(Entry) >= 8,
                "an untrusted entry is copied out in aligned 64-bit words");

 public:
  using internal::ConsumerBase<Entry>::ConsumerBase;

  // A private copy of the i-th unread entry. REQUIRES: i < the last Peek() result.
  Entry CopyOut(std::uint32_t i) const {
    Entry e;
    CopyOutTo(i, &e);
    return e;
  }

  // The same copy, written straight into *out (ringd's batch array), not returned by value.
  void CopyOutTo(std::uint32_t i, Entry* out) const {
    std::uint64_t words[sizeof(Entry) / 8];
    const auto* src = reinterpret_cast<const std::uint64_t*>(this->slot(i));
    for (std::size_t k = 0; k < sizeof(Entry) / 8; ++k) {
      // Relaxed: a single read of a word the client may change at any time; the acquire load
      // of the tail in Peek already ordered the client's stores before it.
      words[k] = __atomic_load_n(&src[k], __ATOMIC_RELAXED);
    }
    std::memcpy(out, words, sizeof(Entry));
  }
};

using SubmissionProducer = RingProducer<Descriptor>;
// ringd consumes its clients' submissions: untrusted.
using SubmissionConsumer = UntrustedRingConsumer<Descriptor>;
using CompletionProducer = RingProducer<Completion>;
using CompletionConsumer = RingConsumer<Completion>;

}  // namespace pinring
