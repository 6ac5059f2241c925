// One ringd per benchmark process, started on first use on a private socket and killed at exit,
// plus the client connected to it. ringd is spawned while the calling thread is pinned to kCpuB,
// so ringd (its event loop and its poller threads) inherits that CPU; the measuring client then
// pins itself to kCpuA. With two cores a busy-poll ringd and a spinning client occupy both.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench_util.h"
#include "pinring/client.h"
#include "pinring/descriptors.h"
#include "pinring/queue.h"
#include "tests/common/ringd_process.h"

namespace pinring::bench {

struct RingdFixture {
  std::unique_ptr<testing::RingdProcess> ringd;
  Client client;
  std::string error;  // non-empty: ringd or the client could not be set up; benchmarks skip
};

// REQUIRES: called from the benchmark thread. `args` are ringd's flags (the socket is added).
inline RingdFixture& GetRingd(const std::vector<std::string>& args) {
  static RingdFixture f = [&] {
    RingdFixture out;
    {
      ScopedAffinity restore;
      PinToCpu(kCpuB);
      auto p = testing::RingdProcess::Start(args);
      if (!p.ok()) {
        out.error = "ringd: " + std::string(p.status().message());
        return out;
      }
      out.ringd = std::move(*p);
    }
    ClientOptions o;
    o.socket_path = out.ringd->socket_path();
    o.name = "pinring-bench";
    auto c = Client::Connect(o);
    if (!c.ok()) {
      out.error = "Client::Connect: " + std::string(c.status().message());
      return out;
    }
    out.client = std::move(*c);
    return out;
  }();
  return f;
}

// Spins until `n` completions are ready; false if the queue became unusable (Health() says why).
inline bool SpinForCompletions(Queue& q, std::uint32_t n) {
  std::uint64_t spins = 0;
  while (q.PeekCompletions(n) < n) {
    if ((++spins & 0xffffff) == 0 && !q.Health().ok()) return false;
  }
  return true;
}

// Runs `n` NOPs through `q` one at a time, untimed, before a measurement: a queue just created
// may wait for ringd's poller to pick it up, and the first pass faults in the ring pages.
// Returns false if a NOP did not complete (the benchmark then skips with Health()).
inline bool WarmUp(Queue& q, int n = 64) {
  for (int i = 0; i < n; ++i) {
    while (q.Reserve(1) == 0) {
    }
    q.Slot(0) = MakeNop(0);
    q.Commit(1);
    if (q.completion_wait() == wire::CompletionWait::kSpin) {
      if (!SpinForCompletions(q, 1)) return false;
    } else if (!q.WaitCompletions(1, absl::Seconds(10)).ok()) {
      return false;
    }
    q.ReleaseCompletions(1);
  }
  return true;
}

// The common start of a benchmark through ringd: the fixture up, a queue with `o`, warmed up.
// The error says why not (for SkipWithError). Call after pinning the thread.
inline absl::StatusOr<Queue> ReadyQueue(RingdFixture& f, const QueueOptions& o) {
  if (!f.error.empty()) return absl::FailedPreconditionError(f.error);
  auto q = f.client.CreateQueue(o);
  if (!q.ok()) return q.status();
  if (!WarmUp(*q))
    return q->Health().ok() ? absl::InternalError("warm-up NOP did not complete") : q->Health();
  return q;
}

}  // namespace pinring::bench
