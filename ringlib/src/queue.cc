// Queue: the out-of-line half (waiting, health, lifetime). The fast path is inline in queue.h.
#include "pinring/queue.h"

#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "connection.h"
#include "pinring/status.h"

namespace pinring {
namespace {

timespec DurationToTimespec(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  return absl::ToTimespec(d);
}

}  // namespace

Queue::Queue(Queue&& other) noexcept { *this = std::move(other); }

Queue& Queue::operator=(Queue&& other) noexcept {
  if (this == &other) return *this;
  Reset();
  conn_ = std::move(other.conn_);
  header_ = std::exchange(other.header_, nullptr);
  map_len_ = std::exchange(other.map_len_, 0);
  sq_ = std::exchange(other.sq_, SubmissionProducer());
  cq_ = std::exchange(other.cq_, CompletionConsumer());
  doorbell_ = other.doorbell_;
  wait_ = other.wait_;
  doorbell_fd_ = std::exchange(other.doorbell_fd_, -1);
  completion_fd_ = std::exchange(other.completion_fd_, -1);
  queue_id_ = std::exchange(other.queue_id_, 0);
  generation_ = other.generation_;
  doorbells_rung_ = std::exchange(other.doorbells_rung_, 0);
  return *this;
}

Queue::~Queue() { Reset(); }

void Queue::Reset() {
  if (header_ != nullptr && generation_ == internal::CurrentForkGeneration()) {
    // Only the creating process speaks for the queue: a forked child sending DestroyQueue on the
    // inherited socket would tear down its parent's queue.
    if (conn_ != nullptr && !conn_->dead()) {
      wire::DestroyQueue req{};
      req.queue_id = queue_id_;
      // Best effort: if ringd is gone there is nothing to destroy.
      (void)conn_->CallFixed<wire::DestroyQueueReply>(wire::MessageType::kDestroyQueue, req, {},
                                                      wire::MessageType::kDestroyQueueReply);
    }
    ::munmap(header_, map_len_);
  }
  // In a forked child the ring is not mapped (MADV_DONTFORK): nothing to unmap. Closing the fds
  // closes only this process's copies.
  if (doorbell_fd_ >= 0) ::close(doorbell_fd_);
  if (completion_fd_ >= 0) ::close(completion_fd_);
  header_ = nullptr;
  map_len_ = 0;
  doorbell_fd_ = completion_fd_ = -1;
  sq_ = SubmissionProducer();
  cq_ = CompletionConsumer();
  conn_.reset();
}

void Queue::RingDoorbell() {
  const std::uint64_t one = 1;
  // EAGAIN would mean the eventfd counter is about to overflow, i.e. ringd has ignored 2^64
  // doorbells; it is already awake in any meaningful sense, so the error is dropped.
  ssize_t r;
  do {
    r = ::write(doorbell_fd_, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
  ++doorbells_rung_;
}

absl::Status Queue::Usable() const {
  if (header_ == nullptr) return absl::FailedPreconditionError("empty pinring::Queue handle");
  if (generation_ != internal::CurrentForkGeneration()) {
    return internal::InheritedAcrossForkError(absl::StrCat("pinring queue ", queue_id_).c_str());
  }
  return absl::OkStatus();
}

absl::Status Queue::Health() const {
  PINRING_RETURN_IF_ERROR(Usable());
  conn_->PollIncoming();
  return KnownHealth();
}

absl::Status Queue::KnownHealth() const {
  PINRING_RETURN_IF_ERROR(Usable());
  if (conn_->dead()) return conn_->DeadStatus();
  // Acquire: ringd writes queue_error before it stops touching the ring; pairs with its release.
  const auto err =
      static_cast<QueueError>(header_->queue_error.value.load(std::memory_order_acquire));
  switch (err) {
    case QueueError::kNone: break;
    case QueueError::kDaemonStopping:
      return absl::UnavailableError(absl::StrCat(
          "ringd stopped (queue ", queue_id_, " marked daemon-stopping) at ", conn_->path(),
          "; reconnect with pinring::Client::Connect"));
    case QueueError::kSqIndexCorrupt:
      return absl::InternalError(absl::StrCat("ringd stopped serving queue ", queue_id_,
                                              ": the submission ring indices are corrupt"));
    case QueueError::kCqIndexCorrupt:
      return absl::InternalError(absl::StrCat("ringd stopped serving queue ", queue_id_,
                                              ": the completion ring indices are corrupt"));
    case QueueError::kQueueMemoryFault:
      return absl::DataLossError(absl::StrCat(
          "ringd stopped serving queue ", queue_id_,
          ": the queue memfd lost pages ringd could not fault back in (a hole punched into it?)"));
    default:
      return absl::InternalError(absl::StrCat("ringd stopped serving queue ", queue_id_,
                                              " (queue_error ", static_cast<std::uint32_t>(err),
                                              ")"));
  }
  if (sq_.corrupt() || cq_.corrupt()) {
    return absl::InternalError(absl::StrCat("queue ", queue_id_,
                                            ": ringd published an impossible ring index"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::uint32_t> Queue::Submit(std::span<const Descriptor> descs) {
  if (header_ == nullptr || generation_ != internal::CurrentForkGeneration() || conn_->dead() ||
      // Relaxed: a hint only; Health() below re-reads it with acquire.
      header_->queue_error.value.load(std::memory_order_relaxed) != 0) {
    PINRING_RETURN_IF_ERROR(Health());
  }
  const std::uint32_t want =
      descs.size() > 0xffffffffu ? 0xffffffffu : static_cast<std::uint32_t>(descs.size());
  const std::uint32_t n = Reserve(want);
  if (n == 0 && want != 0) PINRING_RETURN_IF_ERROR(Health());  // full, or broken: tell which
  for (std::uint32_t i = 0; i < n; ++i) Slot(i) = descs[i];
  Commit(n);
  return n;
}

std::uint32_t Queue::Reap(std::span<Completion> out) {
  const std::uint32_t want =
      out.size() > 0xffffffffu ? 0xffffffffu : static_cast<std::uint32_t>(out.size());
  const std::uint32_t n = PeekCompletions(want);
  for (std::uint32_t i = 0; i < n; ++i) out[i] = CompletionAt(i);
  ReleaseCompletions(n);
  return n;
}

absl::StatusOr<std::uint32_t> Queue::WaitCompletions(std::uint32_t min, absl::Duration timeout) {
  // Only the syscall-free checks here: completions already in the ring are returned without
  // Health()'s poll of the control socket, which is needed only before waiting.
  PINRING_RETURN_IF_ERROR(Usable());
  if (min > cq_.entries()) {
    return absl::InvalidArgumentError(absl::StrCat("WaitCompletions(", min, ") exceeds the ",
                                                   cq_.entries(), "-entry completion ring"));
  }
  if (min > InFlight()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "WaitCompletions(", min, ") can never finish: only ", InFlight(), " descriptors in flight"));
  }
  if (cq_.Peek(min) >= min) return cq_.Peek(cq_.entries());
  // About to wait: notice a stopped ringd first. A blocking wait sleeps in a ppoll that includes
  // the control socket, so it needs only what is already known (one system call less per wait).
  PINRING_RETURN_IF_ERROR(wait_ == wire::CompletionWait::kBlock ? KnownHealth() : Health());
  const absl::Time deadline = absl::Now() + timeout;
  PINRING_RETURN_IF_ERROR(wait_ == wire::CompletionWait::kBlock ? WaitBlocking(min, deadline)
                                                                : WaitSpinning(min, deadline));
  return cq_.Peek(cq_.entries());
}

absl::Status Queue::WaitSpinning(std::uint32_t min, absl::Time deadline) {
  const absl::Time start = absl::Now();
  for (std::uint64_t i = 1;; ++i) {
    if (cq_.Peek(min) >= min) return absl::OkStatus();  // acquire load of cq_tail inside
    if ((i & 1023) == 0) {
      // Every ~1k spins: notice a dead ringd (the socket is the only signal of a SIGKILLed one),
      // check the deadline, and after the first millisecond give the CPU to ringd now and then
      // (on a small machine it may need this very core to make progress).
      PINRING_RETURN_IF_ERROR(Health());
      const absl::Time now = absl::Now();
      if (now >= deadline) {
        if (cq_.Peek(min) >= min) return absl::OkStatus();
        return absl::DeadlineExceededError(absl::StrCat(
            "queue ", queue_id_, ": fewer than ", min, " completions after spinning ",
            absl::FormatDuration(now - start)));
      }
      if (now - start > absl::Milliseconds(1)) ::sched_yield();
    }
    CpuRelax();
  }
}

absl::Status Queue::WaitBlocking(std::uint32_t min, absl::Time deadline) {
  auto& cq_flags = header_->cq_flags.value;
  while (true) {
    // Announce that we are about to sleep. Relaxed store: the fence below orders it.
    cq_flags.store(kCqWaiting, std::memory_order_relaxed);
    // seq_cst fence, the client half of the Dekker handshake on the completion side: ringd
    // publishes cq_tail, fences, then loads cq_flags and signals the completion eventfd if it
    // sees kCqWaiting. We store kCqWaiting, fence, then re-read cq_tail (in Peek). Either ringd
    // sees our flag (and wakes us) or we see its tail (and do not sleep): no lost wakeup.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (cq_.Peek(min) >= min) {
      // Relaxed: clearing is only an optimization (ringd may signal once more, harmlessly).
      cq_flags.store(0, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    // KnownHealth, not Health: the ppoll below watches the control socket itself.
    if (absl::Status s = KnownHealth(); !s.ok()) {
      cq_flags.store(0, std::memory_order_relaxed);
      return s;
    }
    // Sleep on the completion eventfd AND the control socket, so a ShutdownNotice or a dead
    // ringd (EOF / POLLHUP) wakes us instead of leaving us asleep until the timeout.
    pollfd fds[2] = {{completion_fd_, POLLIN, 0}, {conn_->fd(), POLLIN, 0}};
    const timespec ts = DurationToTimespec(deadline - absl::Now());
    const int r = ::ppoll(fds, 2, &ts, nullptr);
    const int poll_errno = errno;
    // Relaxed: see above. Cleared after every wakeup so ringd stops signalling a non-sleeper.
    cq_flags.store(0, std::memory_order_relaxed);
    if (r < 0 && poll_errno != EINTR) return pinring::ErrnoToStatus(poll_errno, "ppoll");
    if (r > 0 && (fds[0].revents & POLLIN)) {
      std::uint64_t count;
      // Drain the eventfd (non-blocking) so the next sleep does not return at once.
      // Its result does not matter: a failed or short read only means the next sleep wakes early.
      (void)!::read(completion_fd_, &count, sizeof count);
    }
    if (r > 0 && fds[1].revents != 0) conn_->PollIncoming();  // Health() reports it next round
    if (cq_.Peek(min) >= min) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      PINRING_RETURN_IF_ERROR(Health());
      return absl::DeadlineExceededError(
          absl::StrCat("queue ", queue_id_, ": fewer than ", min, " completions before the "
                       "deadline (", InFlight(), " in flight)"));
    }
  }
}

absl::StatusOr<Completion> Queue::SubmitAndWait(const Descriptor& desc, absl::Duration timeout) {
  PINRING_RETURN_IF_ERROR(Health());
  if (InFlight() != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "SubmitAndWait needs an idle queue; queue ", queue_id_, " has ", InFlight(),
        " descriptors in flight or completions not yet released"));
  }
  const absl::Time deadline = absl::Now() + timeout;
  // Nothing is in flight, so a slot frees up as soon as ringd publishes its sq_head.
  std::uint32_t spins = 0;
  while (Reserve(1) == 0) {
    PINRING_RETURN_IF_ERROR(Health());
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("queue ", queue_id_, ": no free submission slot before the deadline"));
    }
    if (++spins > 64) ::sched_yield();
  }
  Slot(0) = desc;
  Commit(1);
  auto ready = WaitCompletions(1, deadline - absl::Now());
  if (!ready.ok()) return ready.status();
  const Completion c = CompletionAt(0);
  ReleaseCompletions(1);
  return c;
}

}  // namespace pinring
