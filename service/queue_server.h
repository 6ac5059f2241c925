// ringd's side of one client queue: its own views of the rings (its own head/tail, masks and
// sizes), the doorbell and completion eventfds, and the loop body that turns descriptors into
// completions. Served by exactly one thread at a time: a poller (busy-poll, adaptive) or the event
// loop (eventfd).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "pinring/ring_format.h"
#include "pinring/spsc_ring.h"
#include "wire/wire_protocol.h"
#include "service/backend.h"
#include "service/completion_waker.h"
#include "service/counters.h"
#include "service/descriptor_validator.h"
#include "service/region_table.h"
#include "service/unique_fd.h"
#include "service/untrusted_memfd.h"

namespace pinring::ringd {

struct QueueParams {
  std::uint32_t id = 0;
  std::uint32_t sq_entries = 0;
  std::uint32_t cq_entries = 0;
  wire::DoorbellMode doorbell = wire::DoorbellMode::kBusyPoll;
  wire::CompletionWait completion_wait = wire::CompletionWait::kSpin;
  std::uint32_t adaptive_poll_us = 0;
  // Work one ServeOnce may do, in bytes moved (a CHECKSUM byte counts kChecksumCost). A larger
  // descriptor is executed in slices of this size over several passes, so the queues sharing a
  // thread (other tenants' among them) interleave at this granularity.
  std::uint64_t budget_bytes = 8 * 1024;
};

class QueueServer {
 public:
  // `mapping` is the validated queue memfd mapping (layout already checked against
  // ComputeQueueLayout). `regions`, `backend`, `counters` outlive the queue.
  QueueServer(const QueueParams& p, ClientMapping mapping,
              std::unique_ptr<BackendMemory> ring_registration, UniqueFd doorbell,
              UniqueFd completion, RegionTable* regions, Backend* backend, Counters* counters);
  ~QueueServer();

  // Most descriptors one ServeOnce takes (and hands to the backend as one batch).
  static constexpr std::uint32_t kMaxBatch = 64;
  // CHECKSUM's byte-serial FNV-1a (a multiply chain, ~4 cycles a byte) costs about this many
  // memmove bytes per byte: with it a slice of either kind takes about the same time.
  static constexpr std::uint64_t kChecksumCost = 32;
  // Smallest slice of a large descriptor (a multiple of 8: pattern fills keep their phase).
  static constexpr std::uint64_t kMinSlice = 256;

  // Moves up to min(max, kMaxBatch) descriptors to completions, within params().budget_bytes of
  // work; a descriptor larger than the budget left advances by one slice and completes in a
  // later pass. Returns how many it completed (0: nothing to do, CQ full, stopped, or only a
  // slice of a large descriptor done: busy() then says so). A corrupt index stops the queue
  // (queue_error set, client woken); so does a SIGBUS in the queue memory (kQueueMemoryFault).
  // A fenced descriptor (kDescFlagFence) starts a new backend batch: everything before it has
  // finished when it starts.
  std::uint32_t ServeOnce(std::uint32_t max = kMaxBatch);
  // A large descriptor is part-way done: call ServeOnce again soon.
  bool busy() const { return slice_.active; }

  // The waker of the thread now serving this queue (nullptr: none). REQUIRES: that thread, or
  // the queue is detached from every thread.
  void SetWaker(CompletionWaker* w);

  // Re-reads the client's sq_tail: is there work? (Adaptive sleep re-check.)
  bool HasSubmissions();
  // ringd's half of the doorbell protocol: sets or clears kSqNeedWakeup in sq_flags.
  void SetNeedWakeup(bool on);

  // Stops serving for good: completes what is already submitted with kShuttingDown (as far as
  // the CQ has room) when `why` is kDaemonStopping, writes queue_error, signals the completion
  // eventfd. REQUIRES: no thread is inside ServeOnce (the queue was detached from its server).
  void Stop(QueueError why);

  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  QueueError error() const { return static_cast<QueueError>(error_.load(std::memory_order_acquire)); }
  const QueueParams& params() const { return params_; }
  int doorbell_fd() const { return doorbell_.get(); }
  std::uint64_t ring_bytes() const { return mapping_.size(); }
  std::uint64_t odp_bytes() const {
    return ring_registration_ != nullptr ? ring_registration_->odp_bytes() : 0;
  }
  std::uint64_t pinned_bytes() const {
    return ring_registration_ != nullptr ? ring_registration_->pinned_bytes() : 0;
  }
  std::uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  Counters* counters() const { return counters_; }

  // Adaptive-mode bookkeeping, owned by the serving poller thread.
  std::int64_t last_work_ns = 0;
  bool sleeping = false;

 private:
  void Fail(QueueError why);
  void SignalCompletion(bool always);
  // Runs ops[0, n) as one backend batch, then checks the queue memory for a fault.
  void RunBatch(ValidatedOp* ops, OpResult* results, std::uint32_t n);
  // The same, skipped when *to_execute (ops of the batch that are not fast-path NOPs) is 0;
  // resets it for the next batch.
  void RunBatch(ValidatedOp* ops, OpResult* results, std::uint32_t n, std::uint32_t* to_execute);
  // Advances the large descriptor in slice_ by up to `budget` bytes of work. True when it
  // finished (its result is in *out).
  bool AdvanceSlice(std::uint64_t budget, OpResult* out);

  // The large descriptor being executed in slices (ringd's private copy), always the oldest
  // unconsumed descriptor of the ring: its slot is released only when it completes.
  struct Slice {
    bool active = false;
    Descriptor desc{};
    std::uint64_t done = 0;                    // bytes finished
    std::uint64_t hash = kFnv1a64Seed;         // CHECKSUM state so far
  };

  QueueHeader* header() const { return reinterpret_cast<QueueHeader*>(mapping_.addr()); }

  const QueueParams params_;
  ClientMapping mapping_;
  std::unique_ptr<BackendMemory> ring_registration_;  // declared after mapping_: unpinned first
  UniqueFd doorbell_;
  UniqueFd completion_;
  WakeTarget wake_;
  CompletionWaker* waker_ = nullptr;
  Slice slice_;
  RegionTable* regions_;
  Backend* backend_;
  Counters* counters_;
  SubmissionConsumer sq_;
  CompletionProducer cq_;
  std::atomic<bool> stopped_{false};
  std::atomic<std::uint32_t> error_{0};
  std::atomic<std::uint64_t> completed_{0};
  // ServeOnce's scratch for one batch, allocated once: as locals they would be zeroed (their
  // default member initialisers) on every pass, ~7 KB, more than a batch of NOPs costs.
  std::unique_ptr<ValidatedOp[]> batch_ops_{new ValidatedOp[kMaxBatch]};
  std::unique_ptr<OpResult[]> batch_results_{new OpResult[kMaxBatch]};
};

}  // namespace pinring::ringd
