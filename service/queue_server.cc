#include "service/queue_server.h"

#include <algorithm>

#include "service/descriptor_validator.h"

namespace pinring::ringd {

QueueServer::QueueServer(const QueueParams& p, ClientMapping mapping,
                         std::unique_ptr<BackendMemory> ring_registration, UniqueFd doorbell,
                         UniqueFd completion, RegionTable* regions, Backend* backend,
                         Counters* counters)
    : params_(p),
      mapping_(std::move(mapping)),
      ring_registration_(std::move(ring_registration)),
      doorbell_(std::move(doorbell)),
      completion_(std::move(completion)),
      regions_(regions),
      backend_(backend),
      counters_(counters) {
  wake_.fd = completion_.get();
  wake_.id = CompletionWaker::NewTargetId();
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

QueueServer::~QueueServer() {
  if (waker_ != nullptr) waker_->Forget(wake_);
}

void QueueServer::SetWaker(CompletionWaker* w) {
  if (waker_ == w) return;
  if (waker_ != nullptr) waker_->Forget(wake_);
  waker_ = w;
}

void QueueServer::SignalCompletion(bool always) {
  if (!always) {
    // Dekker with the client: we stored cq_tail (release, in Commit), the client stores
    // kCqWaiting then fences then re-reads cq_tail. This seq_cst fence orders our tail store
    // before our load of cq_flags, so at least one side sees the other: either the client sees
    // the new tail and does not sleep, or we see kCqWaiting and wake it.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if ((header()->cq_flags.value.load(std::memory_order_relaxed) & kCqWaiting) == 0) return;
  }
  // Never write(2): the client shares this eventfd's O_NONBLOCK flag and its counter
  // (completion_waker.h). The waker cannot block, whatever the client did to the file.
  if (waker_ == nullptr) return;
  const std::uint64_t dropped_before = wake_.dropped;
  if (waker_->Wake(wake_)) Counters::Add(counters_->wakeups);
  if (wake_.dropped != dropped_before) Counters::Add(counters_->wakes_dropped, wake_.dropped - dropped_before);
}

void QueueServer::Fail(QueueError why) {
  // Release: a client that sees queue_error also sees every completion published before it.
  error_.store(static_cast<std::uint32_t>(why), std::memory_order_release);
  header()->queue_error.value.store(static_cast<std::uint32_t>(why), std::memory_order_release);
  stopped_.store(true, std::memory_order_release);
  if (why != QueueError::kDaemonStopping) Counters::Add(counters_->queue_errors);
  if (why == QueueError::kQueueMemoryFault) Counters::Add(counters_->memory_faults);
  // Wake a client blocked on completions unconditionally: it must notice the error.
  SignalCompletion(/*always=*/true);
}

void QueueServer::RunBatch(ValidatedOp* ops, OpResult* results, std::uint32_t n) {
  if (n == 0) return;
  backend_->ExecuteBatch(absl::MakeConstSpan(ops, n), absl::MakeSpan(results, n));
}

void QueueServer::RunBatch(ValidatedOp* ops, OpResult* results, std::uint32_t n,
                           std::uint32_t* to_execute) {
  // A run of fast-path NOPs only has nothing for the backend: their results ({kOk, 0}) are set.
  if (*to_execute != 0) RunBatch(ops, results, n);
  *to_execute = 0;
}

bool QueueServer::AdvanceSlice(std::uint64_t budget, OpResult* out) {
  // The regions may have been deregistered between two slices: validate ringd's copy again
  // (handles are never reused, so a hit is the same region).
  ValidatedOp v = ValidateShmDescriptor(slice_.desc, [this](std::uint32_t handle) {
    regions_->mu().AssertReaderHeld();
    return regions_->FindLocked(handle);
  });
  if (v.status != CompletionStatus::kOk) {
    *out = {v.status, 0};
    return true;
  }
  const std::uint64_t length = slice_.desc.length;
  const bool checksum = v.opcode == Opcode::kChecksum;
  std::uint64_t n = checksum ? budget / kChecksumCost : budget;
  n = std::max(kMinSlice, n & ~std::uint64_t{7});  // 8-byte multiples keep a pattern's phase
  n = std::min(n, length - slice_.done);
  // One slice: the same descriptor, narrowed to [done, done + n), its hash continued.
  v.desc.src_offset += slice_.done;
  v.desc.dst_offset += slice_.done;
  v.desc.length = n;
  v.checksum_seed = slice_.hash;
  OpResult r{v.status, 0};
  RunBatch(&v, &r, 1);
  Counters::Add(counters_->chunks);
  if (r.status != CompletionStatus::kOk) {
    *out = r;
    return true;
  }
  slice_.done += n;
  if (checksum) slice_.hash = r.result;
  if (slice_.done < length) return false;
  *out = {CompletionStatus::kOk, checksum ? slice_.hash : length};
  return true;
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
  std::uint32_t done = 0;  // descriptors [0, done) have results
  {
    // Shared lock for the batch: regions named by these descriptors cannot be deregistered (and
    // unmapped/unpinned) until we are done with them.
    absl::ReaderMutexLock l(&regions_->mu());
    ValidatedOp* const ops = batch_ops_.get();
    OpResult* const results = batch_results_.get();
    std::uint64_t budget = params_.budget_bytes;
    std::uint32_t first = 0;  // descriptors [first, i) form the backend batch being built
    std::uint32_t to_execute = 0;  // of those, how many are not NOPs of the fast path
    // Bit k: descriptor k took the NOP fast path; its completion is already written.
    static_assert(kMaxBatch <= 64, "fast_nops has one bit per descriptor of a batch");
    std::uint64_t fast_nops = 0;
    std::uint32_t i = 0;
    if (slice_.active) {
      // Descriptor 0 is the large one begun in an earlier pass: ringd's copy, not the slot.
      ops[0] = ValidateShmDescriptor(slice_.desc, [this](std::uint32_t handle) {
        regions_->mu().AssertReaderHeld();
        return regions_->FindLocked(handle);
      });
      if (!AdvanceSlice(budget, &results[0])) return 0;  // more slices next pass
      slice_.active = false;
      budget = 0;  // its last slice used this pass's budget: complete it and stop
      i = first = done = 1;
    }
    if (budget != 0) {
      // Start every descriptor line of the batch moving now (the client's core wrote them)
      // instead of one miss per descriptor in turn. Completion slots too, but only for real
      // batches: for a lone descriptor the early write-prefetch measurably slowed the round trip.
      sq_.Prefetch(n);
      if (n >= 8) cq_.PrefetchForWrite(n);
    }
    while (budget != 0 && i < n) {
      // A private copy first: the client may rewrite the slot while we look at it. Everything
      // after this works on the copy only.
      ValidatedOp& op = ops[i];
      sq_.CopyOutTo(i, &op.desc);
      if (IsValidNop(op.desc) && (op.desc.flags & kDescFlagFence) == 0) {
        // The fast path: an unfenced NOP needs no lookup, no backend and no further check. Its
        // completion is written now, while the line is being fetched anyway; the client sees
        // it only with the others, at cq_.Commit below. ops[i] stays a valid NOP in case a
        // backend batch around it runs.
        op.status = CompletionStatus::kOk;
        op.opcode = Opcode::kNop;
        op.src = op.dst = nullptr;
        results[i] = {CompletionStatus::kOk, 0};
        cq_.Slot(i) = Completion{op.desc.user_data, 0,
                                 static_cast<std::int32_t>(CompletionStatus::kOk), 0, 0};
        fast_nops |= std::uint64_t{1} << i;
        done = ++i;
        continue;
      }
      op = ValidateShmDescriptor(op.desc, [this](std::uint32_t handle) {
        regions_->mu().AssertReaderHeld();
        return regions_->FindLocked(handle);
      });
      results[i] = {op.status, 0};
      if ((op.desc.flags & kDescFlagFence) != 0 && i > first) {
        // Fence: what came before runs (and finishes) as a batch of its own first.
        RunBatch(ops + first, results + first, i - first, &to_execute);
        first = i;
        Counters::Add(counters_->fences);
      }
      std::uint64_t cost = 0;
      if (op.status == CompletionStatus::kOk && op.opcode != Opcode::kNop) {
        cost = op.opcode == Opcode::kChecksum ? op.desc.length * kChecksumCost : op.desc.length;
        if (op.desc.length > kMinSlice && cost > budget) {
          // Too large for what is left of this pass: finish the batch so far, then begin this
          // one in slices. It stays unconsumed in the ring until its last slice.
          RunBatch(ops + first, results + first, i - first, &to_execute);
          slice_ = Slice{true, op.desc, 0, kFnv1a64Seed};
          done = i;
          if (AdvanceSlice(budget, &results[i])) {
            slice_.active = false;
            done = i + 1;
          }
          first = i = done;
          budget = 0;
          break;
        }
      }
      ++to_execute;  // in the batch it belongs to: after the fence's and the slice's flushes
      budget = cost >= budget ? 0 : budget - cost;
      // Never less than one descriptor per pass, even if it alone spends the budget.
      done = ++i;
    }
    RunBatch(ops + first, results + first, i - first, &to_execute);
    // A SIGBUS ringd absorbed in the queue memory (FaultGuard): the rings now are anonymous
    // memory, not the client's. Stop; nothing more is read from or written to them.
    if (mapping_.faulted()) {
      Fail(QueueError::kQueueMemoryFault);
      return 0;
    }
    if (done == 0) return 0;
    // Statistics are summed here and added once per batch: an atomic add per descriptor would
    // cost more than a NOP does.
    std::uint32_t by_op[kOpcodeCount] = {};
    std::uint32_t by_status[kCompletionStatusCount] = {};
    std::uint64_t bytes = 0;
    const auto n_fast = static_cast<std::uint32_t>(__builtin_popcountll(fast_nops));
    by_op[static_cast<int>(Opcode::kNop)] = n_fast;
    by_status[static_cast<int>(CompletionStatus::kOk)] = n_fast;
    for (std::uint32_t k = 0; k < done; ++k) {
      if ((fast_nops >> k) & 1) continue;  // completed in the loop above
      const Descriptor& d = ops[k].desc;
      const OpResult& r = results[k];
      if (ops[k].status == CompletionStatus::kOk) {
        ++by_op[static_cast<int>(ops[k].opcode)];  // validated: a known opcode
        // A NOP's length is whatever the client wrote there: it moves nothing.
        if (r.status == CompletionStatus::kOk && ops[k].opcode != Opcode::kChecksum &&
            ops[k].opcode != Opcode::kNop) {
          bytes += d.length;
        }
      }
      ++by_status[static_cast<int>(r.status)];
      // One whole-struct store (two 16-byte stores) into the client's line, not five.
      cq_.Slot(k) = Completion{d.user_data, r.result, static_cast<std::int32_t>(r.status), 0, 0};
    }
    for (int k = 0; k < kOpcodeCount; ++k) {
      if (by_op[k] != 0) Counters::Add(counters_->ops[k], by_op[k]);
    }
    for (int k = 0; k < kCompletionStatusCount; ++k) {
      if (by_status[k] != 0) Counters::Add(counters_->completions[k], by_status[k]);
    }
    const std::uint32_t faults = by_status[static_cast<int>(CompletionStatus::kRegionFault)];
    if (faults != 0) Counters::Add(counters_->memory_faults, faults);
    if (bytes != 0) Counters::Add(counters_->bytes_moved, bytes);
  }
  sq_.Release(done);  // release store of sq_head: we are done reading those slots
  cq_.Commit(done);   // release store of cq_tail: the completions above are visible before it
  completed_.fetch_add(done, std::memory_order_relaxed);
  SignalCompletion(/*always=*/false);
  return done;
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
          // A descriptor begun in slices: ringd's own copy names it, not the slot.
          const Descriptor d = i == 0 && slice_.active ? slice_.desc : sq_.CopyOut(i);
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
