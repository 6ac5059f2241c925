#include "service/poller.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "pinring/spsc_ring.h"
#include "pinring/status.h"
#include "service/log.h"

namespace pinring::ringd {
namespace {

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Poller::~Poller() { Stop(); }

absl::Status Poller::Start() {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return pinring::LastErrnoStatus("epoll_create1");
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) return pinring::LastErrnoStatus("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr = the wake eventfd
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    return pinring::LastErrnoStatus("epoll_ctl(wake)");
  }
  PINRING_ASSIGN_OR_RETURN(waker_, CompletionWaker::Create());
  if (waker_->fd() >= 0) {
    // The waker's io_uring: a finished completion-eventfd write may have a wake queued behind
    // it, so a sleeping poller must wake up to reap it. data.ptr = the wake eventfd's marker.
    epoll_event wev{};
    wev.events = EPOLLIN;
    wev.data.ptr = nullptr;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, waker_->fd(), &wev) != 0) {
      return pinring::LastErrnoStatus("epoll_ctl(waker)");
    }
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Poller::Stop() {
  if (!thread_.joinable()) return;
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  changes_.store(true, std::memory_order_release);
  Wake();
  thread_.join();
}

void Poller::Wake() {
  const std::uint64_t one = 1;
  ssize_t ignored = write(wake_.get(), &one, sizeof one);
  (void)ignored;
}

void Poller::Add(QueueServer* q) {
  {
    absl::MutexLock l(&mu_);
    to_add_.push_back(q);
    ++requested_;
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  // Release pairs with the thread's acquire load: it then takes mu_ and sees to_add_.
  changes_.store(true, std::memory_order_release);
  Wake();
}

void Poller::Remove(QueueServer* q) {
  absl::MutexLock l(&mu_);
  to_remove_.push_back(q);
  const std::uint64_t mine = ++requested_;
  changes_.store(true, std::memory_order_release);
  Wake();
  // The thread applies changes only between passes, never inside ServeOnce; once applied_
  // covers our request the queue is out of its list and its epoll set.
  while (applied_ < mine && !stop_) applied_cv_.Wait(&mu_);
  count_.fetch_sub(1, std::memory_order_relaxed);
}

void Poller::ApplyChanges() {
  absl::MutexLock l(&mu_);
  changes_.store(false, std::memory_order_relaxed);
  for (QueueServer* q : to_add_) {
    q->last_work_ns = NowNs();
    q->sleeping = false;
    q->SetWaker(waker_.get());
    if (q->params().doorbell == wire::DoorbellMode::kAdaptive) {
      // Edge-triggered: every doorbell write is one wake-up, and ringd never has to read the
      // client's eventfd (a read could block if the client drained it and cleared O_NONBLOCK).
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLET;
      ev.data.ptr = q;
      if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, q->doorbell_fd(), &ev) != 0) {
        RINGD_LOG(kWarning, "poller ", index_, ": epoll_ctl(ADD doorbell): ", errno,
                  "; queue ", q->params().id, " will busy-poll");
      }
    }
    queues_.push_back(q);
  }
  to_add_.clear();
  for (QueueServer* q : to_remove_) {
    auto it = std::find(queues_.begin(), queues_.end(), q);
    if (it != queues_.end()) {
      if (q->params().doorbell == wire::DoorbellMode::kAdaptive) {
        epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, q->doorbell_fd(), nullptr);
      }
      q->SetWaker(nullptr);  // the next owner (the event loop at shutdown) brings its own
      queues_.erase(it);
    }
  }
  to_remove_.clear();
  applied_ = requested_;
  applied_cv_.SignalAll();
}

// The adaptive sleep protocol, ringd's half of a Dekker handshake with the client:
//   ringd:  store need-wakeup; fence(seq_cst); load sq_tail  -> sleep only if still empty
//   client: store sq_tail;     fence(seq_cst); load sq_flags -> ring only if need-wakeup
// At least one side sees the other's store, so a submission is never left unnoticed.
bool Poller::TrySleep(QueueServer* q) {
  q->SetNeedWakeup(true);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (q->HasSubmissions() || q->stopped()) {
    q->SetNeedWakeup(false);
    return false;
  }
  q->sleeping = true;
  return true;
}

void Poller::Run() {
  std::uint32_t idle_passes = 0;
  epoll_event events[32];
  while (true) {
    // Acquire pairs with the release in Add/Remove/Stop.
    if (changes_.load(std::memory_order_acquire)) {
      {
        absl::MutexLock l(&mu_);
        if (stop_) {
          applied_ = requested_;
          applied_cv_.SignalAll();
          return;
        }
      }
      ApplyChanges();
    }
    bool did_work = false;
    bool any_awake = false;
    std::int64_t now = 0;
    waker_->Reap();  // finished io_uring wakes (a load of the CQ tail when there are none)
    for (QueueServer* q : queues_) {
      if (q->sleeping || q->stopped()) continue;
      any_awake = true;
      // One budgeted pass per queue per round: a tenant's large descriptor advances by a slice
      // while every other queue of this poller gets its turn.
      if (q->ServeOnce() > 0 || q->busy()) {
        did_work = true;
        q->last_work_ns = 0;  // refreshed lazily below, only when the queue goes idle
        continue;
      }
      if (q->params().doorbell != wire::DoorbellMode::kAdaptive) continue;
      if (now == 0) now = NowNs();
      if (q->last_work_ns == 0) {
        q->last_work_ns = now;
        continue;
      }
      if (now - q->last_work_ns >= std::int64_t{q->params().adaptive_poll_us} * 1000) {
        TrySleep(q);
      }
    }
    if (did_work) {
      idle_passes = 0;
      continue;
    }
    ++idle_passes;
    // Block when nothing is awake; otherwise peek at sleeping queues' doorbells now and then.
    const bool block = !any_awake;
    if (block || (idle_passes & 255) == 0) {
      const int n = epoll_wait(epoll_.get(), events, 32, block ? -1 : 0);
      for (int i = 0; i < n; ++i) {
        auto* q = static_cast<QueueServer*>(events[i].data.ptr);
        if (q == nullptr) {
          std::uint64_t v;
          ssize_t ignored = read(wake_.get(), &v, sizeof v);  // ours: non-blocking
          (void)ignored;
          continue;
        }
        if (!q->sleeping) continue;
        // Woken by the doorbell: clear need-wakeup and poll again. Clearing is only an
        // optimisation for the client (fewer doorbell writes); correctness comes from TrySleep.
        Counters::Add(q->counters()->doorbells);
        q->SetNeedWakeup(false);
        q->sleeping = false;
        q->last_work_ns = NowNs();
      }
    } else {
      CpuRelax();
    }
  }
}

}  // namespace pinring::ringd
