// A poller thread: spins over its busy-poll and adaptive queues. Adaptive queues that stayed idle
// for adaptive_poll_us go to sleep on their doorbell eventfd (epoll, edge-triggered); when every
// queue of the poller sleeps, the thread blocks in epoll_wait.
//
// Queues are handed over with Add and taken back with Remove. Remove returns only once the poller
// thread has dropped the queue, so the caller may then destroy it: this is how client teardown
// synchronises with pollers.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "service/completion_waker.h"
#include "service/queue_server.h"
#include "service/unique_fd.h"

namespace pinring::ringd {

class Poller {
 public:
  explicit Poller(int index) : index_(index) {}
  ~Poller();  // Stop()s

  absl::Status Start();
  // Joins the thread. Queues still attached are dropped (not destroyed: the owner destroys them).
  void Stop();

  // Attaches `q` (busy-poll or adaptive). Non-blocking; the poller picks it up on its next pass.
  void Add(QueueServer* q) ABSL_LOCKS_EXCLUDED(mu_);
  // Detaches `q` and waits until the poller thread no longer touches it.
  void Remove(QueueServer* q) ABSL_LOCKS_EXCLUDED(mu_);

  std::size_t queue_count() const { return count_.load(std::memory_order_relaxed); }
  int index() const { return index_; }

 private:
  void Run();
  void ApplyChanges() ABSL_LOCKS_EXCLUDED(mu_);
  void Wake();
  bool TrySleep(QueueServer* q);

  const int index_;
  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: tells a sleeping poller that Add/Remove/Stop happened
  // Wakes this poller's clients (never blocks the thread); used only by the poller thread.
  std::unique_ptr<CompletionWaker> waker_;
  std::thread thread_;

  // Poller-thread-only state.
  std::vector<QueueServer*> queues_;

  mutable absl::Mutex mu_;
  std::vector<QueueServer*> to_add_ ABSL_GUARDED_BY(mu_);
  std::vector<QueueServer*> to_remove_ ABSL_GUARDED_BY(mu_);
  std::uint64_t requested_ ABSL_GUARDED_BY(mu_) = 0;  // change requests made
  std::uint64_t applied_ ABSL_GUARDED_BY(mu_) = 0;    // change requests the thread has applied
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar applied_cv_;  // signalled when applied_ advances
  // Cheap "anything to apply?" check for the spinning thread, without taking mu_.
  std::atomic<bool> changes_{false};
  std::atomic<std::size_t> count_{0};
};

}  // namespace pinring::ringd
