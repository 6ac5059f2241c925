// Tenant isolation (issue 11): a victim client's NOP round trip through ringd, alone and while an
// aggressor client of the same ringd floods it with large COPY and CHECKSUM descriptors.
// Registered by pinring-bench-shm (ringd --backend=cpu) and pinring-bench-verbs (--backend=verbs):
//
//   BM_VictimNop/busy-poll   victim and aggressor queues both DoorbellMode::kBusyPoll (served by
//                            ringd's poller); the victim spins for its completion
//   BM_VictimNop/eventfd     both kEventfd (served by ringd's event loop); the victim blocks
//
// One benchmark iteration is the whole measurement, in this order, on one victim queue:
//   1. alone: up to victim_samples NOP round trips, back to back (or, with victim_interval_us,
//      one starting every so often), or victim_seconds, whichever ends first;
//   2. an aggressor thread connects to the same ringd as a second client (its own connection,
//      queue and two aggressor_bytes regions; same doorbell mode, blocking completion wait so it
//      does not take the victim's CPU) and keeps kAggressorCommits commits of kAggressorCopies
//      COPY + kAggressorChecksums CHECKSUM (each aggressor_bytes long) in flight, reaping and
//      resubmitting (its two first commits staggered, so that one waits in its ring while ringd
//      works on the other); once both are in, the victim samples again as in 1;
//   3. the aggressor stops submitting, drains what it has in flight (bounded) and disconnects.
// Counters (ns): alone_{p50,p99,p999,max}_ns and loaded_{...}_ns with their sample counts,
// p99_ratio = loaded_p99_ns / alone_p99_ns, and what the aggressor got done meanwhile. A victim
// round trip that exceeds kSampleTimeout ends its phase (victim_timed_out = 1; the sample is kept
// at the time waited), so the row finishes in bounded time however badly the victim starves.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench_util.h"
#include "pinring/client.h"
#include "pinring/descriptors.h"
#include "pinring/queue.h"
#include "ringd_fixture.h"

namespace pinring::bench {

inline constexpr std::uint32_t kAggressorCopies = 2;
inline constexpr std::uint32_t kAggressorChecksums = 2;
inline constexpr std::uint32_t kAggressorCommit = kAggressorCopies + kAggressorChecksums;
inline constexpr std::uint32_t kAggressorCommits = 2;              // commits kept in flight
inline constexpr absl::Duration kStagger = absl::Milliseconds(5);  // first commit -> second
// Longest single victim round trip waited for; longest aggressor drain after it stops.
inline constexpr absl::Duration kSampleTimeout = absl::Seconds(120);
inline constexpr absl::Duration kDrainTimeout = absl::Seconds(300);

// The second tenant: a thread with its own Client on the victim's ringd. Start() returns once its
// first commit is submitted (or why it could not be); Stop() (also the destructor) ends it and
// joins, so no thread outlives the benchmark.
class Aggressor {
 public:
  Aggressor() = default;
  Aggressor(const Aggressor&) = delete;
  Aggressor& operator=(const Aggressor&) = delete;
  ~Aggressor() { Stop(); }

  absl::Status Start(const std::string& socket_path, wire::DoorbellMode doorbell,
                     std::uint64_t bytes) {
    std::promise<absl::Status> ready;
    std::future<absl::Status> started = ready.get_future();
    thread_ = std::thread([this, socket_path, doorbell, bytes, r = std::move(ready)]() mutable {
      Run(socket_path, doorbell, bytes, r);
    });
    absl::Status s = started.get();
    if (!s.ok()) Stop();
    return s;
  }

  // Stops submitting, waits (at most kDrainTimeout) for what is in flight, disconnects, joins.
  void Stop() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
  }

  // Descriptors completed so far (each one aggressor_bytes of work), and failures.
  std::uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  std::uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  // After Stop(): non-empty if the aggressor's queue failed or its drain timed out.
  const std::string& error() const { return error_; }

 private:
  void Run(const std::string& socket_path, wire::DoorbellMode doorbell, std::uint64_t bytes,
           std::promise<absl::Status>& ready) {
    bool signalled = false;
    auto fail = [&](const absl::Status& s) {
      if (!signalled) {
        ready.set_value(s);
        signalled = true;
      } else {
        error_ = s.ToString();
      }
    };
    PinToCpu(kCpuA);  // beside the victim, off ringd's CPU; it sleeps while ringd works
    ClientOptions co;
    co.socket_path = socket_path;
    co.name = "pinring-bench-aggressor";
    auto client = Client::Connect(co);
    if (!client.ok()) return fail(client.status());
    auto src = client->CreateRegion({.size = bytes});
    if (!src.ok()) return fail(src.status());
    auto dst = client->CreateRegion({.size = bytes});
    if (!dst.ok()) return fail(dst.status());
    std::memset(src->data(), 0x5a, bytes);  // fault both in before the flood starts
    std::memset(dst->data(), 0, bytes);
    QueueOptions qo;
    qo.sq_entries = 16;
    qo.doorbell = doorbell;
    qo.completion_wait = wire::CompletionWait::kBlock;
    auto q = client->CreateQueue(qo);
    if (!q.ok()) return fail(q.status());
    if (!WarmUp(*q, 4))
      return fail(q->Health().ok() ? absl::InternalError("warm-up NOP lost") : q->Health());
    std::uint64_t seq = 0;
    // As many whole commits as the in-flight cap (`commits` of them) allows.
    auto submit = [&](std::uint32_t commits = kAggressorCommits) {
      while (q->InFlight() + kAggressorCommit <= commits * kAggressorCommit &&
             q->Reserve(kAggressorCommit) == kAggressorCommit) {
        for (std::uint32_t i = 0; i < kAggressorCommit; ++i) {
          const std::uint32_t s = src->handle(), d = dst->handle();
          q->Slot(i) = i < kAggressorCopies ? MakeCopy(s, 0, d, 0, bytes, ++seq)
                                            : MakeChecksum(i % 2 == 0 ? s : d, 0, bytes, ++seq);
        }
        q->Commit(kAggressorCommit);
      }
    };
    auto reap = [&] {
      const std::uint32_t n = q->PeekCompletions(q->cq_entries());
      std::uint64_t bad = 0;
      for (std::uint32_t i = 0; i < n; ++i) bad += q->CompletionAt(i).status != 0;
      q->ReleaseCompletions(n);
      completed_.fetch_add(n - bad, std::memory_order_relaxed);
      failed_.fetch_add(bad, std::memory_order_relaxed);
    };
    // Staggered start: the first commit alone, the second once ringd has taken the first. From
    // then on one commit waits in the ring while ringd works on the other, and each completion
    // is refilled at once, so the aggressor's ring is never empty for long (a flood, not a
    // lock-step of whole passes).
    // One whole commit first, waited for: ringd's own mappings of both regions are then faulted
    // in, so the measured flood is steady state (a first sweep would charge ringd's page faults,
    // not its scheduling, to the victim).
    submit(1);
    while (completed_.load(std::memory_order_relaxed) + failed_.load(std::memory_order_relaxed) <
           kAggressorCommit) {
      auto w = q->WaitCompletions(1, kDrainTimeout);
      if (!w.ok()) return fail(w.status());
      reap();
    }
    submit(1);
    absl::SleepFor(kStagger);
    submit();
    ready.set_value(absl::OkStatus());
    signalled = true;
    while (!stop_.load(std::memory_order_relaxed)) {
      auto w = q->WaitCompletions(1, absl::Milliseconds(50));  // re-checks stop_ 20 times/s
      if (!w.ok() && !absl::IsDeadlineExceeded(w.status())) return fail(w.status());
      reap();
      submit();
    }
    const absl::Time deadline = absl::Now() + kDrainTimeout;
    while (q->InFlight() > 0) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return fail(absl::DeadlineExceededError(
            absl::StrCat(q->InFlight(), " aggressor descriptors still in flight after ",
                         absl::FormatDuration(kDrainTimeout))));
      }
      auto w = q->WaitCompletions(1, left);
      if (!w.ok() && !absl::IsDeadlineExceeded(w.status())) return fail(w.status());
      reap();
    }
  }  // queue, regions and connection go here, on the aggressor's thread

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::string error_;
};

// The victim's sampling loop, for both transports: up to `max_samples` round trips until `cap`
// has passed, back to back or, with a non-zero `interval`, one starting every `interval` (pacing
// spins when `spin`, sleeps otherwise; it is not timed). `round_trip(user_data)` submits one NOP
// with that user_data and waits for it: true when it completed (and was checked), false when it
// waited its timeout. Appends TSC ticks per round trip to `out`. A round trip that timed out is
// kept as a (censored) sample at the time waited and ends the loop: *timed_out, and
// *censored_t0 when its NOP was submitted (it is still in flight).
template <typename RoundTrip>
absl::Status PacedSamples(bool spin, std::uint64_t max_samples, absl::Duration interval,
                          absl::Duration cap, std::vector<std::uint64_t>& out, bool* timed_out,
                          std::uint64_t* censored_t0, RoundTrip round_trip) {
  const double tpn = TicksPerNs();
  const std::uint64_t start = Ticks();
  const std::uint64_t end =
      start + static_cast<std::uint64_t>(absl::ToDoubleNanoseconds(cap) * tpn);
  const auto interval_ticks = static_cast<std::uint64_t>(absl::ToDoubleNanoseconds(interval) * tpn);
  std::uint64_t next = start;
  static std::uint64_t seq = 0;  // user_data across phases and rows: each NOP its own
  *timed_out = false;
  for (std::uint64_t i = 0; i < max_samples && Ticks() < end; ++i) {
    for (std::uint64_t now = Ticks(); now < next; now = Ticks()) {
      if (!spin) absl::SleepFor(absl::Nanoseconds(static_cast<double>(next - now) / tpn));
    }
    const std::uint64_t t0 = Ticks();
    next = t0 + interval_ticks;
    absl::StatusOr<bool> done = round_trip(++seq);
    if (!done.ok()) return done.status();
    out.push_back(Ticks() - t0);
    if (!*done) {
      *timed_out = true;
      if (censored_t0 != nullptr) *censored_t0 = t0;
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

// Victim round trips on the shm transport's `q` (PacedSamples; a round trip is waited for at
// most kSampleTimeout).
inline absl::Status VictimSamples(Queue& q, std::uint64_t max_samples, absl::Duration interval,
                                  absl::Duration cap, std::vector<std::uint64_t>& out,
                                  bool* timed_out) {
  const bool spin = q.completion_wait() == wire::CompletionWait::kSpin;
  const std::uint64_t timeout_ticks =
      static_cast<std::uint64_t>(absl::ToDoubleNanoseconds(kSampleTimeout) * TicksPerNs());
  return PacedSamples(spin, max_samples, interval, cap, out, timed_out, nullptr,
                      [&](std::uint64_t seq) -> absl::StatusOr<bool> {
    const std::uint64_t t0 = Ticks();
    while (q.Reserve(1) == 0) {
      if (!q.Health().ok()) return q.Health();
    }
    q.Slot(0) = MakeNop(seq);
    q.Commit(1);
    if (spin) {
      std::uint64_t spins = 0;
      while (q.PeekCompletions(1) == 0) {
        if ((++spins & 0xfff) != 0) continue;
        if (Ticks() - t0 > timeout_ticks) break;
        if ((spins & 0xffffff) == 0 && !q.Health().ok()) return q.Health();
      }
    } else {
      auto w = q.WaitCompletions(1, kSampleTimeout);
      if (!w.ok() && !absl::IsDeadlineExceeded(w.status())) return w.status();
    }
    if (q.PeekCompletions(1) == 0) return false;  // waited kSampleTimeout
    if (q.CompletionAt(0).user_data != seq || q.CompletionAt(0).status != 0) {
      return absl::InternalError(absl::StrCat("victim NOP ", seq, ": completion user_data ",
                                              q.CompletionAt(0).user_data, " status ",
                                              q.CompletionAt(0).status));
    }
    q.ReleaseCompletions(1);
    return true;
  });
}

// p50/p99/p99.9/max (ns) and the count of `ticks` as counters named PREFIX_p50_ns etc.
inline void ReportPercentiles(benchmark::State& state, const std::string& prefix,
                              std::vector<std::uint64_t> ticks) {
  state.counters[prefix + "_samples"] = static_cast<double>(ticks.size());
  if (ticks.empty()) return;
  std::sort(ticks.begin(), ticks.end());
  const double per_ns = 1.0 / TicksPerNs();
  auto at = [&](double q) {
    return static_cast<double>(ticks[static_cast<std::size_t>(q * (ticks.size() - 1))]) * per_ns;
  };
  state.counters[prefix + "_p50_ns"] = at(0.50);
  state.counters[prefix + "_p99_ns"] = at(0.99);
  state.counters[prefix + "_p999_ns"] = at(0.999);
  state.counters[prefix + "_max_ns"] = static_cast<double>(ticks.back()) * per_ns;
}

// The row body. `ringd` returns the binary's fixture (its --backend). REQUIRES: benchmark thread.
inline void BM_VictimNop(benchmark::State& state, RingdFixture& (*ringd)(),
                         wire::DoorbellMode doorbell, wire::CompletionWait wait,
                         const Options& opt) {
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  RingdFixture& f = ringd();
  QueueOptions o;
  o.sq_entries = 256;
  o.doorbell = doorbell;
  o.completion_wait = wait;
  auto q = ReadyQueue(f, o);
  if (!q.ok()) return state.SkipWithError(q.status().ToString().c_str());
  const absl::Duration cap = absl::Seconds(opt.victim_seconds);
  const absl::Duration interval = absl::Microseconds(opt.victim_interval_us);
  std::vector<std::uint64_t> alone, loaded;
  alone.reserve(opt.victim_samples);
  loaded.reserve(opt.victim_samples);
  bool timed_out = false;
  std::uint64_t agg_done = 0, agg_failed = 0;
  double window_s = 0;
  for (auto _ : state) {
    absl::Status s = VictimSamples(*q, opt.victim_samples, interval, cap, alone, &timed_out);
    if (s.ok() && timed_out) s = absl::DeadlineExceededError("victim NOP timed out alone");
    if (!s.ok()) return state.SkipWithError(("alone: " + s.ToString()).c_str());
    Aggressor a;
    s = a.Start(f.ringd->socket_path(), doorbell, opt.aggressor_bytes);
    if (!s.ok()) return state.SkipWithError(("aggressor: " + s.ToString()).c_str());
    const std::uint64_t done0 = a.completed();
    const absl::Time t0 = absl::Now();
    s = VictimSamples(*q, opt.victim_samples, interval, cap, loaded, &timed_out);
    window_s = absl::ToDoubleSeconds(absl::Now() - t0);
    agg_done = a.completed() - done0;
    agg_failed = a.failed();
    a.Stop();
    if (!s.ok()) return state.SkipWithError(("with aggressor: " + s.ToString()).c_str());
    if (!a.error().empty()) return state.SkipWithError(("aggressor: " + a.error()).c_str());
    if (agg_failed != 0) {
      return state.SkipWithError(
          absl::StrCat(agg_failed, " aggressor descriptors completed with an error").c_str());
    }
    if (timed_out) {  // the censored NOP: it completes once the aggressor is gone
      auto w = q->WaitCompletions(1, kDrainTimeout);
      if (!w.ok())
        return state.SkipWithError(("victim NOP lost: " + w.status().ToString()).c_str());
      q->ReleaseCompletions(1);
    }
  }
  ReportPercentiles(state, "alone", alone);
  ReportPercentiles(state, "loaded", loaded);
  if (state.counters.count("alone_p99_ns") && state.counters.count("loaded_p99_ns")) {
    state.counters["p99_ratio"] = state.counters["loaded_p99_ns"] / state.counters["alone_p99_ns"];
  }
  state.counters["victim_timed_out"] = timed_out ? 1 : 0;
  state.counters["aggressor_bytes"] = static_cast<double>(opt.aggressor_bytes);
  state.counters["aggressor_descs"] = static_cast<double>(agg_done);
  // Bytes of COPY and CHECKSUM work completed per second while the victim sampled.
  state.counters["aggressor_work_bytes_per_s"] =
      window_s > 0 ? static_cast<double>(agg_done * opt.aggressor_bytes) / window_s : 0;
  state.SetLabel(absl::StrCat("victim + aggressor cpu 0, ringd cpu 1 (",
                              ringd().client.info().backend, "); aggressor ", kAggressorCommits,
                              " commits of ", kAggressorCopies, " COPY + ", kAggressorChecksums,
                              " CHECKSUM ", SizeName(opt.aggressor_bytes), " in flight"));
}

// Registers BM_VictimNop/busy-poll and BM_VictimNop/eventfd against `ringd`'s fixture.
inline void RegisterVictimBenchmarks(RingdFixture& (*ringd)(), const Options& o) {
  benchmark::AddCustomContext("pinring_victim_samples", std::to_string(o.victim_samples));
  benchmark::AddCustomContext("pinring_victim_interval_us", std::to_string(o.victim_interval_us));
  benchmark::AddCustomContext("pinring_victim_seconds", std::to_string(o.victim_seconds));
  benchmark::AddCustomContext("pinring_aggressor_bytes", std::to_string(o.aggressor_bytes));
  for (auto [name, doorbell, wait] :
       {std::tuple{"BM_VictimNop/busy-poll", wire::DoorbellMode::kBusyPoll,
                   wire::CompletionWait::kSpin},
        std::tuple{"BM_VictimNop/eventfd", wire::DoorbellMode::kEventfd,
                   wire::CompletionWait::kBlock}}) {
    benchmark::RegisterBenchmark(name, BM_VictimNop, ringd, doorbell, wait, o)
        ->Iterations(1)  // one iteration is the whole bounded measurement
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace pinring::bench
