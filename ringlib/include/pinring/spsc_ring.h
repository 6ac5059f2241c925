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
#include <cstdint>
#include <cstring>

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

template <typename Entry>
class RingConsumer {
 public:
  RingConsumer() = default;
  RingConsumer(const Entry* slots, std::uint32_t entries, std::atomic<std::uint32_t>* head,
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

  // The i-th unread entry, in place. REQUIRES: i < the last Peek() result. A trusting reader may
  // use this; a reader of untrusted memory should use CopyOut so it validates a stable copy.
  const Entry& Slot(std::uint32_t i) const { return slots_[(head_ + i) & mask_]; }

  // Hints the CPU to fetch the next `n` unread slots at once (see RingProducer::PrefetchForWrite).
  // REQUIRES: n <= the last Peek() result. A hint only: it orders nothing.
  void Prefetch(std::uint32_t n) const {
    for (std::uint32_t i = 0; i < n; i += internal::EntriesPerLine<Entry>()) {
      __builtin_prefetch(&slots_[(head_ + i) & mask_], /*rw=*/0, /*locality=*/3);
    }
  }

  // A private copy of the i-th unread entry: the producer may keep scribbling over the slot, so
  // an untrusted entry is validated and used only from this copy (no time-of-check/time-of-use).
  Entry CopyOut(std::uint32_t i) const {
    Entry e;
    std::memcpy(&e, &slots_[(head_ + i) & mask_], sizeof(Entry));
    return e;
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

using SubmissionProducer = RingProducer<Descriptor>;
using SubmissionConsumer = RingConsumer<Descriptor>;
using CompletionProducer = RingProducer<Completion>;
using CompletionConsumer = RingConsumer<Completion>;

}  // namespace pinring
