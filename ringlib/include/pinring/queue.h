// A queue: one submission ring and one completion ring in a sealed memfd shared with ringd.
//
// Fast path (header-inline, no syscall, no allocation):
//
//   uint32_t n = q.Reserve(batch);          // how many slots are free (0: full, or check Health())
//   for (uint32_t i = 0; i < n; ++i) q.Slot(i) = MakeNop(i);
//   q.Commit(n);                            // publish; rings the doorbell only if ringd sleeps
//   ...
//   uint32_t m = q.PeekCompletions(32);     // completions ready to read
//   for (uint32_t i = 0; i < m; ++i) Use(q.CompletionAt(i));
//   q.ReleaseCompletions(m);
//
// Slow path (out of line, returns Status): WaitCompletions, Submit, Reap, SubmitAndWait, Health.
//
// Threading: a Queue is single-producer single-consumer from the client's side, i.e. one thread
// at a time may call its methods (thread-compatible, like a std::vector). Use one Queue per thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pinring/fork_generation.h"
#include "pinring/ring_format.h"
#include "pinring/spsc_ring.h"
#include "pinring/export.h"
#include "pinring/wire_types.h"

namespace pinring {

namespace internal {
class Connection;
}  // namespace internal

struct QueueOptions {
  // Ring sizes. REQUIRES: powers of two in [kMinRingEntries, the HelloReply limits].
  // cq_entries == 0 means "same as sq_entries".
  std::uint32_t sq_entries = 256;
  std::uint32_t cq_entries = 0;
  // How ringd learns of new descriptors (see wire::DoorbellMode).
  wire::DoorbellMode doorbell = wire::DoorbellMode::kEventfd;
  // How WaitCompletions waits (see wire::CompletionWait).
  wire::CompletionWait completion_wait = wire::CompletionWait::kBlock;
  // kAdaptive only: how long ringd keeps polling after the last work; 0 = ringd's default.
  std::uint32_t adaptive_poll_us = 0;
  // MADV_DONTFORK on the ring mapping, so a forked child has no mapping there and can never
  // scribble on the parent's rings. Turn off only to study what happens without it.
  bool dont_fork = true;
};

// RAII handle: the destructor asks ringd to destroy the queue (completions of descriptors still in
// flight are lost), then unmaps the rings and closes the eventfds. Move-only.
class PINRING_EXPORT Queue {
 public:
  Queue() = default;  // an empty handle; only assignment and destruction are valid
  Queue(Queue&& other) noexcept;
  Queue& operator=(Queue&& other) noexcept;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  ~Queue();

  // ---- fast path: submission -----------------------------------------------------------------
  // Returns how many of `want` slots can be filled now. 0 means the ring is full, or the queue is
  // unusable (inherited across fork, ringd stopped, indices corrupt): call Health() to tell which.
  // Also caps the count so that descriptors in flight never exceed cq_entries, so ringd always
  // has room for every completion.
  [[nodiscard]] std::uint32_t Reserve(std::uint32_t want) {
    // A forked child must not touch the ring: it is not even mapped there (MADV_DONTFORK), and
    // with dont_fork off it would be the parent's live ring.
    if (internal::CurrentForkGeneration() != generation_) return 0;
    const std::uint32_t cq_room = cq_.entries() - InFlight();
    if (want > cq_room) want = cq_room;
    if (want == 0) return 0;
    return sq_.Reserve(want);
  }

  // The i-th reserved slot, to be filled in place. REQUIRES: i < the last Reserve() result.
  Descriptor& Slot(std::uint32_t i) { return sq_.Slot(i); }

  // Publishes the first `n` reserved slots to ringd and, in kEventfd / kAdaptive mode, rings the
  // doorbell if (and only if) ringd has said it is going to sleep. REQUIRES: n <= the last
  // Reserve() result.
  void Commit(std::uint32_t n) {
    if (n == 0) return;
    sq_.Commit(n);  // release store of sq_tail: ringd sees the slots before the tail
    if (doorbell_ == wire::DoorbellMode::kBusyPoll) return;  // a poller spins; never ring
    // seq_cst fence, the client half of a Dekker handshake with ringd. ringd, before sleeping,
    // stores kSqNeedWakeup, issues a seq_cst fence, and re-reads sq_tail. We stored sq_tail and
    // now load sq_flags. Without a full fence on both sides the store->load pairs may reorder
    // (even x86 reorders a store with a later load), and both could read the old value: ringd
    // sleeps on the old tail while we skip the doorbell — a lost wakeup. With the fences, at
    // least one side sees the other's store.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // Relaxed: ordering comes from the fence above; we need only the flag's current value.
    if (header_->sq_flags.value.load(std::memory_order_relaxed) & kSqNeedWakeup) RingDoorbell();
  }

  // ---- fast path: completions ----------------------------------------------------------------
  // Returns how many completions (at most `max`) are ready to read; 0 when none, or when the
  // queue is unusable (see Health()).
  [[nodiscard]] std::uint32_t PeekCompletions(std::uint32_t max) {
    if (internal::CurrentForkGeneration() != generation_) return 0;
    return cq_.Peek(max);  // acquire load of cq_tail (only when the cache is short)
  }

  // The i-th ready completion, in place. REQUIRES: i < the last PeekCompletions() result.
  const Completion& CompletionAt(std::uint32_t i) const { return cq_.Slot(i); }

  // Hands `n` read completions back to ringd. REQUIRES: n <= the last PeekCompletions() result.
  void ReleaseCompletions(std::uint32_t n) {
    if (n != 0) cq_.Release(n);  // release store of cq_head: our reads precede ringd's reuse
  }

  // Descriptors submitted whose completions have not been released yet. Private arithmetic,
  // no shared-memory access: completions come one per descriptor, in submission order.
  std::uint32_t InFlight() const { return sq_.tail() - cq_.head(); }

  // ---- slow path -----------------------------------------------------------------------------
  // OK while the queue can be used. Otherwise:
  //   FailedPrecondition  the handle was inherited across fork(): create a new Client in the child;
  //   Unavailable         ringd stopped (ShutdownNotice, socket closed, queue_error
  //                       kDaemonStopping): reconnect with Client::Connect;
  //   Internal            the ring indices are corrupt (a protocol violation).
  // Polls the control socket without blocking to notice a dead ringd.
  absl::Status Health() const;

  // Copies as many of `descs` as fit into the ring and commits them in one batch. Returns how
  // many were submitted (possibly 0 when the ring is full), or Health()'s error.
  absl::StatusOr<std::uint32_t> Submit(std::span<const Descriptor> descs);

  // Waits until at least `min` completions are ready (PeekCompletions(min) == min), spinning or
  // blocking as the queue's CompletionWait says. Returns the number ready (>= min), or
  // DeadlineExceeded after `timeout`, or Health()'s error (a blocked waiter is woken when ringd
  // stops). REQUIRES: min <= cq_entries().
  absl::StatusOr<std::uint32_t> WaitCompletions(std::uint32_t min, absl::Duration timeout);

  // Copies up to out.size() ready completions into `out`, releases them, returns how many.
  std::uint32_t Reap(std::span<Completion> out);

  // Submits `desc`, waits for its completion, reaps and returns it (its `status` says whether
  // ringd executed it). REQUIRES: nothing else in flight on this queue (FailedPrecondition
  // otherwise), so the next completion is this descriptor's.
  absl::StatusOr<Completion> SubmitAndWait(const Descriptor& desc, absl::Duration timeout);

  // ---- facts ---------------------------------------------------------------------------------
  std::uint32_t id() const { return queue_id_; }
  std::uint32_t sq_entries() const { return sq_.entries(); }
  std::uint32_t cq_entries() const { return cq_.entries(); }
  wire::DoorbellMode doorbell_mode() const { return doorbell_; }
  wire::CompletionWait completion_wait() const { return wait_; }
  // The shared header, for diagnostics and the ring_to_device example. Read-only use: its
  // indices belong to the ring views.
  const QueueHeader* header() const { return header_; }
  // Start of the submission ring in this process's mapping.
  const void* ring_address() const { return header_; }
  std::size_t ring_bytes() const { return map_len_; }
  // How often Commit() found kSqNeedWakeup and wrote the doorbell eventfd.
  std::uint64_t doorbells_rung() const { return doorbells_rung_; }
  bool valid() const { return header_ != nullptr; }

 private:
  // FailedPrecondition for an empty handle or one inherited across fork(); no syscall.
  absl::Status Usable() const;
  // Health() from what is already known, without polling the control socket: for callers about
  // to sleep in a ppoll that includes the socket (it wakes them if ringd speaks or dies).
  absl::Status KnownHealth() const;
  friend class Client;
  void RingDoorbell();  // out of line: the write(2) on the doorbell eventfd
  void Reset();
  absl::Status WaitBlocking(std::uint32_t min, absl::Time deadline);
  absl::Status WaitSpinning(std::uint32_t min, absl::Time deadline);

  std::shared_ptr<internal::Connection> conn_;
  QueueHeader* header_ = nullptr;
  std::size_t map_len_ = 0;
  SubmissionProducer sq_;
  CompletionConsumer cq_;
  wire::DoorbellMode doorbell_ = wire::DoorbellMode::kBusyPoll;
  wire::CompletionWait wait_ = wire::CompletionWait::kSpin;
  int doorbell_fd_ = -1;
  int completion_fd_ = -1;
  std::uint32_t queue_id_ = 0;
  std::uint32_t generation_ = 0;
  std::uint64_t doorbells_rung_ = 0;
};

}  // namespace pinring
