#include "service/queue_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "service/descriptor_validator.h"

namespace pinring::ringd {

QueueServer::QueueServer(const QueueParams& p, UniqueFd memfd, Mapping mapping,
                         std::unique_ptr<BackendMemory> ring_registration, UniqueFd doorbell,
                         UniqueFd completion, RegionTable* regions, Backend* backend,
                         Counters* counters)
    : params_(p),
      memfd_(std::move(memfd)),
      mapping_(std::move(mapping)),
      ring_registration_(std::move(ring_registration)),
      doorbell_(std::move(doorbell)),
      completion_(std::move(completion)),
      regions_(regions),
      backend_(backend),
      counters_(counters) {
  // Ring geometry from ringd's own computation, never from the header the client wrote.
  const QueueLayout l = ComputeQueueLayout(p.sq_entries, p.cq_entries);
  QueueHeader* h = header();
  auto* base = mapping_.bytes();
  // ringd-owned words start from a known state; the client's words are read as they are.
  h->sq_head.value.store(0, std::memory_order_relaxed);
  h->cq_tail.value.store(0, std::memory_order_relaxed);
  h->queue_error.value.store(0, std::memory_order_relaxed);
  // eventfd mode: need-wakeup is permanently set (the client always rings). Busy-poll and adaptive
  // start awake. Release: the zeroed indices above are visible before the flag is.
  h->sq_flags.value.store(p.doorbell == wire::DoorbellMode::kEventfd ? kSqNeedWakeup : 0,
                          std::memory_order_release);
  sq_ = SubmissionConsumer(reinterpret_cast<const Descriptor*>(base + l.sq_offset), p.sq_entries,
                           &h->sq_head.value, &h->sq_tail.value, 0);
  cq_ = CompletionProducer(reinterpret_cast<Completion*>(base + l.cq_offset), p.cq_entries,
                           &h->cq_tail.value, &h->cq_head.value, 0);
}

QueueServer::~QueueServer() = default;

void QueueServer::SignalCompletion(bool always) {
  if (!always) {
    // Dekker with the client: we stored cq_tail (release, in Commit), the client stores
    // kCqWaiting then fences then re-reads cq_tail. This seq_cst fence orders our tail store
    // before our load of cq_flags, so at least one side sees the other: either the client sees
    // the new tail and does not sleep, or we see kCqWaiting and wake it.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if ((header()->cq_flags.value.load(std::memory_order_relaxed) & kCqWaiting) == 0) return;
  }
  // The client owns this eventfd and could have cleared O_NONBLOCK; put it back so a counter the
  // client drove to its maximum makes our write fail with EAGAIN rather than block a poller.
  const int fl = fcntl(completion_.get(), F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK) == 0) fcntl(completion_.get(), F_SETFL, fl | O_NONBLOCK);
  const std::uint64_t one = 1;
  if (write(completion_.get(), &one, sizeof one) == sizeof one) Counters::Add(counters_->wakeups);
}

void QueueServer::Fail(QueueError why) {
  // Release: a client that sees queue_error also sees every completion published before it.
  error_.store(static_cast<std::uint32_t>(why), std::memory_order_release);
  header()->queue_error.value.store(static_cast<std::uint32_t>(why), std::memory_order_release);
  stopped_.store(true, std::memory_order_release);
  if (why != QueueError::kDaemonStopping) Counters::Add(counters_->queue_errors);
  // Wake a client blocked on completions unconditionally: it must notice the error.
  SignalCompletion(/*always=*/true);
}

std::uint32_t QueueServer::ServeOnce(std::uint32_t max) {
  if (stopped_.load(std::memory_order_relaxed)) return 0;  // only this thread ever sets it
  // Peek validates the client's sq_tail against our private head (it never trusts it beyond a
  // ring's worth); a violation latches corrupt().
  std::uint32_t n = sq_.Peek(max);
  if (sq_.corrupt()) {
    Fail(QueueError::kSqIndexCorrupt);
    return 0;
  }
  if (n == 0) return 0;
  const std::uint32_t room = cq_.Reserve(n);
  if (cq_.corrupt()) {
    Fail(QueueError::kCqIndexCorrupt);
    return 0;
  }
  n = std::min({n, room, kMaxBatch});
  if (n == 0) return 0;  // CQ full: the client has not reaped; try again later
  {
    // Shared lock for the batch: regions named by these descriptors cannot be deregistered (and
    // unmapped/unpinned) until we are done with them.
    absl::ReaderMutexLock l(&regions_->mu());
    // Start every descriptor line of the batch moving now (the client's core wrote them) instead
    // of one miss per descriptor in turn. Completion slots too, but only for real batches: for a
    // lone descriptor the early write-prefetch measurably slowed the round trip (BM_ShmNop*).
    sq_.Prefetch(n);
    if (n >= 8) cq_.PrefetchForWrite(n);
    ValidatedOp* const ops = batch_ops_.get();
    OpResult* const results = batch_results_.get();
    for (std::uint32_t i = 0; i < n; ++i) {
      // A private copy first: the client may rewrite the slot while we look at it. Everything
      // after this works on the copy only.
      ops[i] = ValidateDescriptor(sq_.CopyOut(i), [this](std::uint32_t handle) {
        regions_->mu().AssertReaderHeld();
        return regions_->FindLocked(handle);
      });
      results[i] = {ops[i].status, 0};
    }
    // The whole batch at once: the verbs backend keeps its WRITEs in flight together.
    backend_->ExecuteBatch(absl::MakeConstSpan(ops, n), absl::MakeSpan(results, n));
    // Statistics are summed here and added once per batch: an atomic add per descriptor would
    // cost more than a NOP does.
    std::uint32_t by_op[kOpcodeCount] = {};
    std::uint32_t by_status[kCompletionStatusCount] = {};
    std::uint64_t bytes = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const Descriptor& d = ops[i].desc;
      const OpResult& r = results[i];
      if (ops[i].status == CompletionStatus::kOk) {
        ++by_op[static_cast<int>(ops[i].opcode)];  // validated: a known opcode
        if (r.status == CompletionStatus::kOk && ops[i].opcode != Opcode::kChecksum) {
          bytes += d.length;
        }
      }
      ++by_status[static_cast<int>(r.status)];
      Completion& c = cq_.Slot(i);
      c.user_data = d.user_data;
      c.result = r.result;
      c.status = static_cast<std::int32_t>(r.status);
      c.reserved0 = 0;
      c.reserved1 = 0;
    }
    for (int k = 0; k < kOpcodeCount; ++k) {
      if (by_op[k] != 0) Counters::Add(counters_->ops[k], by_op[k]);
    }
    for (int k = 0; k < kCompletionStatusCount; ++k) {
      if (by_status[k] != 0) Counters::Add(counters_->completions[k], by_status[k]);
    }
    if (bytes != 0) Counters::Add(counters_->bytes_moved, bytes);
  }
  sq_.Release(n);  // release store of sq_head: we are done reading those slots
  cq_.Commit(n);   // release store of cq_tail: the completions above are visible before it
  completed_.fetch_add(n, std::memory_order_relaxed);
  SignalCompletion(/*always=*/false);
  return n;
}

bool QueueServer::HasSubmissions() {
  if (stopped_.load(std::memory_order_relaxed)) return false;
  // Peek(1) re-reads sq_tail (acquire) because our cached value shows nothing ready.
  const bool ready = sq_.Peek(1) > 0;
  if (sq_.corrupt()) {
    Fail(QueueError::kSqIndexCorrupt);
    return false;
  }
  return ready;
}

void QueueServer::SetNeedWakeup(bool on) {
  // sq_flags is ours alone; relaxed store, the caller fences (seq_cst) before re-reading sq_tail.
  header()->sq_flags.value.store(on ? kSqNeedWakeup : 0, std::memory_order_relaxed);
}

void QueueServer::Stop(QueueError why) {
  if (stopped_.load(std::memory_order_relaxed)) {
    SignalCompletion(true);
    return;
  }
  if (why == QueueError::kDaemonStopping) {
    // Descriptors already submitted are answered, not dropped: kShuttingDown, not executed.
    std::uint32_t n = sq_.Peek(sq_.entries());
    if (!sq_.corrupt() && n > 0) {
      n = std::min(n, cq_.Reserve(n));
      if (!cq_.corrupt() && n > 0) {
        for (std::uint32_t i = 0; i < n; ++i) {
          const Descriptor d = sq_.CopyOut(i);
          Completion& c = cq_.Slot(i);
          c = Completion{};
          c.user_data = d.user_data;
          c.status = static_cast<std::int32_t>(CompletionStatus::kShuttingDown);
          Counters::Add(counters_->completions[static_cast<int>(CompletionStatus::kShuttingDown)]);
        }
        sq_.Release(n);
        cq_.Commit(n);
      }
    }
  }
  Fail(why);
}

}  // namespace pinring::ringd
