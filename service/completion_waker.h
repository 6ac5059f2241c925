// Waking a client that sleeps on its completion eventfd, without ever blocking ringd.
//
// The eventfd is the client's: it shares the open file description with ringd, so it can clear
// O_NONBLOCK at any moment, and it can drive the counter to 2^64-2, where one more write(2)
// blocks until somebody reads. No fcntl beforehand closes that race. So ringd never calls
// write(2) on it:
//  - Where the kernel supports it (eventfd has FMODE_NOWAIT, 6.8 and later), one
//    pwritev2(RWF_NOWAIT): non-blocking per call, whatever the file's flags say. EAGAIN means the
//    client saturated its own counter; the wake is dropped (counted), that client only loses.
//  - Elsewhere an io_uring write on a ring of the waker's own: the kernel waits, if it must, in
//    its own worker, and ringd reaps the result later. At most one write per queue is in flight;
//    a wake asked for meanwhile is sent when the pending one completes, so none is lost.
//
// One waker per serving thread (each poller, the event loop); a queue uses the waker of the
// thread serving it. Not thread-safe: only the owning thread calls it.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace pinring::ringd {

// Per-queue wake state, owned by the queue and used by whichever waker serves it.
struct WakeTarget {
  int fd = -1;                  // the client's completion eventfd (ringd's copy)
  std::uint64_t id = 0;         // unique for the process lifetime: names the target in CQEs
  bool in_flight = false;       // an io_uring write for it is pending
  bool again = false;           // a wake was asked for while it was pending
  std::uint64_t dropped = 0;    // wakes the client's saturated counter refused (EAGAIN)
};

class CompletionWaker {
 public:
  static absl::StatusOr<std::unique_ptr<CompletionWaker>> Create();
  ~CompletionWaker();

  // Signals t.fd once, never blocking. True when the wake was delivered or is on its way.
  bool Wake(WakeTarget& t);
  // Reaps finished io_uring writes and re-sends wakes asked for meanwhile. Cheap when idle (a
  // load of the CQ tail).
  void Reap();
  // `t` is going away or moving to another waker: forget its pending write (its CQE is ignored).
  void Forget(WakeTarget& t);
  // Waits up to `timeout` for the writes in flight to finish (shutdown: the last wakes must
  // reach their clients before the ring is torn down). A write that cannot finish (a saturated
  // counter) is abandoned when the timeout passes.
  void Drain(int timeout_ms);

  // Readable when Reap has work (the io_uring fd); -1 when wakes never go through io_uring.
  int fd() const { return use_uring_ ? ring_.ring_fd : -1; }
  // "pwritev2(RWF_NOWAIT)" or "io_uring": which path this kernel takes.
  static const char* Method();

  static std::uint64_t NewTargetId();

 private:
  CompletionWaker() = default;
  bool Submit(WakeTarget& t);

  bool use_uring_ = false;
  io_uring ring_{};
  absl::flat_hash_map<std::uint64_t, WakeTarget*> in_flight_;
};

}  // namespace pinring::ringd
