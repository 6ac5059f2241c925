#include "service/completion_waker.h"

#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>

#include "pinring/status.h"

namespace pinring::ringd {
namespace {

// What every wake writes. Static: an io_uring write may read it after Wake returned.
const std::uint64_t kOne = 1;
constexpr unsigned kRingEntries = 64;

// Whether this kernel's eventfd takes RWF_NOWAIT (FMODE_NOWAIT, 6.8+): probed once on an eventfd
// of our own, in blocking mode. Older kernels answer EOPNOTSUPP.
bool NowaitWorks() {
  static const bool works = [] {
    const int fd = eventfd(0, EFD_CLOEXEC);
    if (fd < 0) return false;
    iovec iov{const_cast<std::uint64_t*>(&kOne), sizeof kOne};
    const bool ok = pwritev2(fd, &iov, 1, -1, RWF_NOWAIT) == sizeof kOne;
    close(fd);
    return ok;
  }();
  return works;
}

}  // namespace

std::uint64_t CompletionWaker::NewTargetId() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);  // uniqueness only, no ordering
}

const char* CompletionWaker::Method() { return NowaitWorks() ? "pwritev2(RWF_NOWAIT)" : "io_uring"; }

absl::StatusOr<std::unique_ptr<CompletionWaker>> CompletionWaker::Create() {
  auto w = std::unique_ptr<CompletionWaker>(new CompletionWaker());
  if (!NowaitWorks()) {
    if (int rc = io_uring_queue_init(kRingEntries, &w->ring_, 0); rc < 0) {
      return pinring::ErrnoToStatus(-rc, "io_uring_queue_init (completion waker)");
    }
    w->use_uring_ = true;
  }
  return w;
}

CompletionWaker::~CompletionWaker() {
  // Cancels writes still pending (a saturated counter) and waits for the kernel to drop them.
  if (use_uring_) io_uring_queue_exit(&ring_);
}

bool CompletionWaker::Wake(WakeTarget& t) {
  if (t.fd < 0) return false;
  if (!use_uring_) {
    iovec iov{const_cast<std::uint64_t*>(&kOne), sizeof kOne};
    // RWF_NOWAIT: EAGAIN instead of sleeping, whatever O_NONBLOCK the client left on the file.
    if (pwritev2(t.fd, &iov, 1, -1, RWF_NOWAIT) == sizeof kOne) return true;
    ++t.dropped;  // EAGAIN: the client's own counter is full
    return false;
  }
  if (t.in_flight) {
    t.again = true;  // sent when the pending write completes (Reap)
    return true;
  }
  return Submit(t);
}

bool CompletionWaker::Submit(WakeTarget& t) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    Reap();
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      ++t.dropped;
      return false;
    }
  }
  io_uring_prep_write(sqe, t.fd, &kOne, sizeof kOne, 0);
  // IOSQE_ASYNC: straight to the kernel's io-wq worker, never an inline attempt. An eventfd
  // without FMODE_NOWAIT is written inline when its file has O_NONBLOCK, and the client can clear
  // that flag between io_uring's check and eventfd_write's own: the submitting thread, ringd's,
  // would then sleep on a saturated counter. In the worker only the worker waits.
  io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
  io_uring_sqe_set_data64(sqe, t.id);
  // Submitted now, not batched: the kernel resolves the fd number at submission, and the caller
  // may close the fd right after Wake returns.
  if (io_uring_submit(&ring_) < 1) {
    ++t.dropped;
    return false;
  }
  t.in_flight = true;
  t.again = false;
  in_flight_[t.id] = &t;
  return true;
}

void CompletionWaker::Reap() {
  if (!use_uring_) return;
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
    const std::uint64_t id = io_uring_cqe_get_data64(cqe);
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) continue;  // its queue went away (Forget)
    WakeTarget& t = *it->second;
    in_flight_.erase(it);
    t.in_flight = false;
    if (res != static_cast<int>(sizeof kOne)) ++t.dropped;
    if (t.again) Submit(t);
  }
}

void CompletionWaker::Drain(int timeout_ms) {
  if (!use_uring_) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!in_flight_.empty()) {
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    __kernel_timespec ts{left.count() / 1'000'000'000, left.count() % 1'000'000'000};
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
    if (rc < 0 && rc != -EINTR) return;  // -ETIME: the rest stays pending, cancelled at exit
    Reap();
  }
}

void CompletionWaker::Forget(WakeTarget& t) {
  if (t.in_flight) in_flight_.erase(t.id);
  t.in_flight = false;
  t.again = false;
}

}  // namespace pinring::ringd
