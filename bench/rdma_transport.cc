// pinring-bench-rdma: the rdma transport (docs/rdma-transport.md) on a real or soft-RoCE device.
// The client keeps its rings in its own registered memory. One round trip of a small batch is:
// write the descriptors, SEND the doorbell carrying them inline, ringd executes them and
// RDMA-WRITEs the completions with an immediate (the notification), the client polls its CQ. A
// pulled batch adds ringd's RDMA READ of the descriptors from the client's SQ ring. The anchors
// are perftest's ib_send_lat and ib_read_lat, 8 B, on the same device in the same boot
// (bench/run-benchmarks).
//
//   BM_RdmaTransportRoundTrip/nop        NOP: the transport alone (inline doorbell, WRITE_WITH_IMM)
//   BM_RdmaTransportRoundTrip/nop_pull   NOP, pulled (doorbell, READ, WRITE_WITH_IMM): the
//                                        same queue options with max_inline_descriptors = 0
//   BM_RdmaTransportRoundTrip/copy_8B    COPY of 8 B between two of the client's regions, which
//                                        ringd moves with RDMA READ + WRITE on the client's memory
//   BM_RdmaTransportBatch/inline/batch:N N NOPs submitted at once, reaped all: the batch round
//   BM_RdmaTransportBatch/pull/batch:N   trip (N = 1 .. 32) on each path, the inline queue with
//                                        max_inline_descriptors = 32 (the protocol's maximum):
//                                        where they meet is the crossover
//
// Tenant isolation on the rdma transport: the counterpart of bench/victim.h's BM_VictimNop rows,
// with the same phases, counters, aggressor shape and --pinring_victim_* / aggressor flags:
//
//   BM_RdmaVictimNop/spin    the victim RdmaQueue polls its CQ (kSpin)
//   BM_RdmaVictimNop/block   the victim sleeps on its completion channel (kBlock)
//
// One iteration is the whole measurement on one victim RdmaQueue (its own connection): NOP round
// trips alone (victim_samples or victim_seconds, whichever ends first), then again while an
// aggressor thread (a second RdmaQueue: its own connection to the same rdma listener, its own two
// aggressor_bytes regions, kBlock) keeps kAggressorCommits commits of kAggressorCopies COPY +
// kAggressorChecksums CHECKSUM in flight, then the aggressor drains and disconnects. A victim
// round trip is waited for at most min(victim.h's kSampleTimeout, max(victim_seconds, 1 s)); a
// longer one is kept at the time waited and ends its phase (victim_timed_out = 1), so the row is
// bounded however long ringd's rdma thread stays on the aggressor. Extra counters:
// sample_timeout_s (that bound); aggressor_desc_ns (mean time of one aggressor descriptor in its
// first commit, alone: what a victim queued behind one descriptor waits at least); for a timed-out
// round trip, censored_nop_ns (its NOP's submit to completion, waited for while the aggressor
// drains) and censored_nop_after_aggressor_ns (that completion minus the aggressor's last one);
// aggressor_doorbells_rerung (see kStallCommits).
//
// A stalled peer ringd (issue 14, part 3: progress per connection):
//
//   BM_RdmaStalledPeerNop    the victim's NOP round trips alone, then while a second client of
//                            the same ringd has a REMOTE_WRITE waiting on a peer ringd that
//                            stopped answering (a second ringd process, SIGSTOPped after its
//                            peer link came up). Counters as the victim rows (alone_*, loaded_*,
//                            p99_ratio: target <= 2), stalled_op_pending = 1 when the stalled
//                            op was still pending when the loaded phase ended (the phase really
//                            ran during the stall), stalled_op_status (its completion status
//                            after the peer resumed).
//
// --pinring_rdma_poll_us=U passes --rdma_poll_us=U to ringd (bench/run-benchmarks gives the
// latency rows 2000: ringd's rdma thread then polls between round trips, as perftest does).
//
// ringd is a real process (--backend=verbs --rdma_port=P), spawned pinned to kCpuB; the clients
// run on kCpuA. Without a device ringd has no rdma listener and every row is skipped with why.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "bench_util.h"
#include "pinring/descriptors.h"
#include "pinring/rdma_queue.h"
#include "verbs/verbs_device.h"
#include "wire/rdma_wire.h"
#include "ringd_fixture.h"
#include "tests/common/ringd_process.h"
#include "tests/common/self_rdma_address.h"
#include "victim.h"

namespace pinring::bench {
namespace {

// The rdma listener's port: PINRING_BENCH_RDMA_PORT, else one derived from the pid so that two
// benchmark processes (or a test ringd on the default 18515) do not collide.
std::uint16_t RdmaPort() {
  if (const char* p = std::getenv("PINRING_BENCH_RDMA_PORT"); p != nullptr && *p != '\0') {
    return static_cast<std::uint16_t>(std::strtoul(p, nullptr, 10));
  }
  return static_cast<std::uint16_t>(20000 + getpid() % 20000);
}

// RdmaQueue::Connect, retried for up to 30 s: ringd opens its rdma listener after its control
// socket, so the first attempts may come before it listens.
absl::StatusOr<std::unique_ptr<RdmaQueue>> ConnectRetrying(const RdmaQueueOptions& o) {
  absl::Status last;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    auto q = RdmaQueue::Connect(o);
    if (q.ok()) return q;
    last = q.status();
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::UnavailableError(
      absl::StrCat("RdmaQueue::Connect(", o.address, ":", o.port, "): ", last.ToString()));
}

struct Transport {
  RdmaQueueOptions options;  // address and port of this process's ringd; more queues start here
  std::unique_ptr<RdmaQueue> q;
  RdmaRegion* src = nullptr;
  RdmaRegion* dst = nullptr;
  std::string error;  // non-empty: no device, ringd or connection; every row skips with it
};

// --pinring_rdma_poll_us, set by main before any row runs.
std::string& RdmaPollUs() {
  static std::string v;
  return v;
}

Transport MakeTransport(std::uint32_t max_inline) {
  static const std::uint16_t port = RdmaPort();
  Transport out;
  std::vector<std::string> args = {"--backend=verbs", "--rdma_port=" + std::to_string(port)};
  if (!RdmaPollUs().empty()) args.push_back("--rdma_poll_us=" + RdmaPollUs());
  RingdFixture& f = GetRingd(args);
  if (!f.error.empty()) {
    out.error = f.error;
    return out;
  }
  RdmaQueueOptions& o = out.options;
  o.address = testing::SelfRdmaAddress();  // ringd is on this host
  if (o.address.empty()) {
    out.error = std::string("no RDMA device with an IPv4 GID: ") + std::string(kNoDeviceFix);
    return out;
  }
  o.port = port;
  o.sq_entries = 64;
  o.completion_wait = wire::CompletionWait::kSpin;
  o.timeout = absl::Seconds(20);
  o.max_inline_descriptors = max_inline;
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  auto q = ConnectRetrying(o);
  if (!q.ok()) {
    out.error = q.status().ToString();
    return out;
  }
  out.q = std::move(*q);
  auto s = out.q->CreateRegion(4096);
  auto d = out.q->CreateRegion(4096);
  if (!s.ok() || !d.ok()) {
    out.error = "CreateRegion: " + (s.ok() ? d.status() : s.status()).ToString();
    return out;
  }
  out.src = *s;
  out.dst = *d;
  return out;
}

// The queue every row uses (the default RdmaQueueOptions: small batches inline); connections of
// the same process to the same ringd that pull every batch, and that send up to the protocol's
// maximum inline.
Transport& GetTransport() {
  static Transport t = MakeTransport(RdmaQueueOptions{}.max_inline_descriptors);
  return t;
}
Transport& GetPullTransport() {
  static Transport t = MakeTransport(0);
  return t;
}
Transport& GetMaxInlineTransport() {
  static Transport t = MakeTransport(rdma::kMaxInlineDescriptors);
  return t;
}

// One descriptor at a time, submit to reaped completion.
void BM_RdmaTransportRoundTrip(benchmark::State& state, bool copy, bool pull) {
  Transport& t = pull ? GetPullTransport() : GetTransport();
  if (!t.error.empty()) return state.SkipWithError(t.error.c_str());
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  constexpr std::uint64_t kBytes = 8;
  auto make = [&](std::uint64_t seq) {
    return copy ? MakeCopy(t.src->handle(), 0, t.dst->handle(), 0, kBytes, seq) : MakeNop(seq);
  };
  for (std::uint64_t i = 0; i < 8; ++i) {  // warm-up: first READs fault in the ring pages
    auto c = t.q->SubmitAndWait(make(i), absl::Seconds(20));
    if (!c.ok()) return state.SkipWithError(c.status().ToString().c_str());
  }
  LatencyRecorder lat(state);
  std::uint64_t seq = 100;
  std::string failure;
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    auto c = t.q->SubmitAndWait(make(++seq), absl::Seconds(20));
    const std::uint64_t t1 = Ticks();
    if (!c.ok()) {
      failure = c.status().ToString();
      break;
    }
    if (c->status != 0 || c->user_data != seq) {
      failure = std::string("completion status ") +
                CompletionStatusName(CompletionStatus{c->status}) + ", user_data " +
                std::to_string(c->user_data) + " (expected " + std::to_string(seq) + ")";
      break;
    }
    lat.Add(t1 - t0);
  }
  if (!failure.empty()) return state.SkipWithError(failure.c_str());
  lat.Report(state);
  state.SetItemsProcessed(state.iterations());
  if (copy) state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kBytes));
  state.SetLabel(t.q->device_name());
}

// A batch of state.range(0) NOPs, submitted at once and reaped whole: one row per path.
void BM_RdmaTransportBatch(benchmark::State& state, bool pull) {
  Transport& t = pull ? GetPullTransport() : GetMaxInlineTransport();
  if (!t.error.empty()) return state.SkipWithError(t.error.c_str());
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<Descriptor> batch(n);
  std::vector<Completion> out(n);
  std::uint64_t seq = 0;
  std::string failure;
  auto round_trip = [&]() -> bool {
    for (Descriptor& d : batch) d = MakeNop(++seq);
    if (absl::Status s = t.q->Submit(batch); !s.ok()) {
      failure = s.ToString();
      return false;
    }
    for (std::size_t got = 0; got < n;) {
      auto k = t.q->Reap(absl::MakeSpan(out).subspan(got), absl::Seconds(20));
      if (!k.ok() || *k == 0) {
        failure = k.ok() ? "no completion within 20 s" : k.status().ToString();
        return false;
      }
      got += *k;
    }
    if (out[n - 1].user_data != seq || out[n - 1].status != 0) {
      failure = "completions out of order or failed";
      return false;
    }
    return true;
  };
  for (int i = 0; i < 8; ++i) {  // warm-up
    if (!round_trip()) return state.SkipWithError(failure.c_str());
  }
  LatencyRecorder lat(state);
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    if (!round_trip()) break;
    lat.Add(Ticks() - t0);
  }
  if (!failure.empty()) return state.SkipWithError(failure.c_str());
  lat.Report(state);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetLabel(absl::StrCat(t.q->device_name(), pull ? ", pulled" : ", inline"));
}

// --- tenant isolation: victim NOP round trip under an aggressor (bench/victim.h's shape) --------

// The aggressor re-rings its doorbell (an empty Submit: a doorbell with the tail it already
// announced) after this many commits' worth of its first commit's time, at least
// kMinStallTimeout, with descriptors in flight and no completion: in this benchmark's guest runs
// ringd's rdma thread sometimes never acted on the aggressor's last doorbell, and without a later
// doorbell that work would never be done. Such a doorbell is harmless when ringd did see the
// first one (it brings nothing new); the row counts them (aggressor_doorbells_rerung).
inline constexpr std::uint32_t kStallCommits = 8;
inline constexpr absl::Duration kMinStallTimeout = absl::Seconds(5);

// The second tenant on the rdma transport: a thread with its own RdmaQueue (its own rdma_cm
// connection to the same listener). Start() returns once its warm-up commit is done and the
// flood's first two commits are submitted (or why it could not be); Stop() (also the destructor)
// ends it and joins, so no thread outlives the benchmark.
class RdmaAggressor {
 public:
  RdmaAggressor() = default;
  RdmaAggressor(const RdmaAggressor&) = delete;
  RdmaAggressor& operator=(const RdmaAggressor&) = delete;
  ~RdmaAggressor() { Stop(); }

  absl::Status Start(const RdmaQueueOptions& base, std::uint64_t bytes) {
    std::promise<absl::Status> ready;
    std::future<absl::Status> started = ready.get_future();
    thread_ =
        std::thread([this, base, bytes, r = std::move(ready)]() mutable { Run(base, bytes, r); });
    absl::Status s = started.get();
    if (!s.ok()) Stop();
    return s;
  }

  // Stops submitting; the thread then drains what is in flight and disconnects. Does not wait.
  void RequestStop() { stop_.store(true, std::memory_order_relaxed); }
  // RequestStop, waits (at most kDrainTimeout) for what is in flight, disconnects, joins.
  void Stop() {
    RequestStop();
    if (thread_.joinable()) thread_.join();
  }

  std::uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  std::uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  // TSC ticks when the aggressor last reaped a completion (final once Stop() returned).
  std::uint64_t last_completion_ticks() const {
    return last_completion_.load(std::memory_order_relaxed);
  }
  // Mean time of one descriptor of the first (warm-up) commit, which ran alone. Set by Start().
  double desc_ns() const { return desc_ns_; }
  // Doorbells re-rung after a stall (kStallCommits); final once Stop() returned.
  std::uint64_t rerung() const { return rerung_.load(std::memory_order_relaxed); }
  // After Stop(): non-empty if the aggressor's queue failed or its drain timed out.
  const std::string& error() const { return error_; }

 private:
  void Run(const RdmaQueueOptions& base, std::uint64_t bytes, std::promise<absl::Status>& ready) {
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
    RdmaQueueOptions o = base;
    o.sq_entries = 16;
    o.completion_wait = wire::CompletionWait::kBlock;
    auto q = ConnectRetrying(o);
    if (!q.ok()) return fail(q.status());
    auto src = (*q)->CreateRegion(bytes);
    if (!src.ok()) return fail(src.status());
    auto dst = (*q)->CreateRegion(bytes);
    if (!dst.ok()) return fail(dst.status());
    std::memset((*src)->data(), 0x5a, bytes);
    std::memset((*dst)->data(), 0, bytes);
    RdmaQueue& rq = **q;
    for (int i = 0; i < 4; ++i) {  // warm-up NOPs: the first READs of the ring
      auto c = rq.SubmitAndWait(MakeNop(0), absl::Seconds(20));
      if (!c.ok()) return fail(c.status());
    }
    std::uint64_t seq = 0;
    // As many whole commits as the in-flight cap (`commits` of them) allows, one doorbell each.
    auto submit = [&](std::uint32_t commits = kAggressorCommits) -> absl::Status {
      while (rq.in_flight() + kAggressorCommit <= commits * kAggressorCommit) {
        Descriptor d[kAggressorCommit];
        for (std::uint32_t i = 0; i < kAggressorCommit; ++i) {
          const std::uint32_t s = (*src)->handle(), t = (*dst)->handle();
          d[i] = i < kAggressorCopies ? MakeCopy(s, 0, t, 0, bytes, ++seq)
                                      : MakeChecksum(i % 2 == 0 ? s : t, 0, bytes, ++seq);
        }
        if (absl::Status st = rq.Submit(absl::MakeConstSpan(d)); !st.ok()) return st;
      }
      return absl::OkStatus();
    };
    Completion out[16];
    absl::Duration stall = absl::InfiniteDuration();  // set once the first commit's time is known
    absl::Time progress = absl::Now();                // last completion or re-rung doorbell
    // Waits up to `timeout` for completions and counts them; OK with none on timeout. After
    // `stall` without a completion while work is in flight, rings the doorbell again.
    auto reap = [&](absl::Duration timeout) -> absl::Status {
      auto n = rq.Reap(absl::MakeSpan(out), timeout);
      if (!n.ok()) return n.status();
      std::uint64_t bad = 0;
      for (std::size_t i = 0; i < *n; ++i) bad += out[i].status != 0;
      completed_.fetch_add(*n - bad, std::memory_order_relaxed);
      failed_.fetch_add(bad, std::memory_order_relaxed);
      const absl::Time now = absl::Now();
      if (*n > 0) {
        last_completion_.store(Ticks(), std::memory_order_relaxed);
        progress = now;
      } else if (rq.in_flight() > 0 && now - progress >= stall) {
        rerung_.fetch_add(1, std::memory_order_relaxed);
        progress = now;
        return rq.Submit(absl::Span<const Descriptor>());
      }
      return absl::OkStatus();
    };
    // One whole commit first, alone and waited for (its time is desc_ns), then the staggered
    // start: one commit, and the second once ringd is working on the first, so that one waits
    // in the ring while ringd works on the other. Each completion is refilled at once.
    const absl::Time w0 = absl::Now();
    if (absl::Status st = submit(1); !st.ok()) return fail(st);
    while (completed() + failed() < kAggressorCommit) {
      const absl::Duration left = w0 + kDrainTimeout - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return fail(absl::DeadlineExceededError(absl::StrCat(
            "first aggressor commit not done after ", absl::FormatDuration(kDrainTimeout))));
      }
      if (absl::Status st = reap(left); !st.ok()) return fail(st);
    }
    desc_ns_ = absl::ToDoubleNanoseconds(absl::Now() - w0) / kAggressorCommit;
    stall =
        std::max(kMinStallTimeout, absl::Nanoseconds(desc_ns_ * kAggressorCommit * kStallCommits));
    progress = absl::Now();
    if (absl::Status st = submit(1); !st.ok()) return fail(st);
    absl::SleepFor(kStagger);
    if (absl::Status st = submit(); !st.ok()) return fail(st);
    ready.set_value(absl::OkStatus());
    signalled = true;
    while (!stop_.load(std::memory_order_relaxed)) {
      // Reap wakes at least every 100 ms (its CM check); 50 ms re-checks stop_ 20 times/s.
      if (absl::Status st = reap(absl::Milliseconds(50)); !st.ok()) return fail(st);
      if (absl::Status st = submit(); !st.ok()) return fail(st);
    }
    const absl::Time deadline = absl::Now() + kDrainTimeout;
    while (rq.in_flight() > 0) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return fail(absl::DeadlineExceededError(
            absl::StrCat(rq.in_flight(), " aggressor descriptors still in flight after ",
                         absl::FormatDuration(kDrainTimeout))));
      }
      if (absl::Status st = reap(std::min(left, absl::Milliseconds(100))); !st.ok()) {
        return fail(st);
      }
    }
  }  // queue, regions and connection go here, on the aggressor's thread

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> last_completion_{0};
  std::atomic<std::uint64_t> rerung_{0};
  double desc_ns_ = 0;  // written before Start() returns (the promise orders it)
  std::string error_;
};

// Victim round trips on `q` until `max_samples` or `cap` has passed, back to back or, with a
// non-zero `interval`, one starting every `interval` (pacing spins for a kSpin queue, sleeps for
// kBlock; it is not timed). Appends TSC ticks per round trip to `out`. Returns an error if the
// queue failed; sets *timed_out (and returns OK) if one round trip exceeded `timeout`, whose NOP is
// then still in flight (kept as a sample at the time waited; *censored_t0: when it was submitted).
absl::Status RdmaVictimSamples(RdmaQueue& q, bool spin, std::uint64_t max_samples,
                               absl::Duration interval, absl::Duration cap, absl::Duration timeout,
                               std::vector<std::uint64_t>& out, bool* timed_out,
                               std::uint64_t* censored_t0) {
  return PacedSamples(spin, max_samples, interval, cap, out, timed_out, censored_t0,
                      [&](std::uint64_t seq) -> absl::StatusOr<bool> {
    const Descriptor d = MakeNop(seq);
    if (absl::Status s = q.Submit(absl::MakeConstSpan(&d, 1)); !s.ok()) return s;
    Completion c{};
    auto n = q.Reap(absl::MakeSpan(&c, 1), timeout);
    if (!n.ok()) return n.status();
    if (*n == 0) return false;  // waited `timeout`
    if (c.user_data != seq || c.status != 0) {
      return absl::InternalError(absl::StrCat("victim NOP ", seq, ": completion user_data ",
                                              c.user_data, " status ", c.status));
    }
    return true;
  });
}

void BM_RdmaVictimNop(benchmark::State& state, wire::CompletionWait wait, const Options& opt) {
  Transport& t = GetTransport();
  if (!t.error.empty()) return state.SkipWithError(t.error.c_str());
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  RdmaQueueOptions o = t.options;
  o.sq_entries = 64;
  o.completion_wait = wait;
  auto q = ConnectRetrying(o);
  if (!q.ok()) return state.SkipWithError(("victim: " + q.status().ToString()).c_str());
  for (int i = 0; i < 64; ++i) {  // warm-up: the first READs fault in the ring pages
    auto c = (*q)->SubmitAndWait(MakeNop(0), absl::Seconds(20));
    if (!c.ok()) return state.SkipWithError(("warm-up: " + c.status().ToString()).c_str());
  }
  const absl::Duration cap = absl::Seconds(opt.victim_seconds);
  const absl::Duration interval = absl::Microseconds(opt.victim_interval_us);
  const absl::Duration timeout = std::min(kSampleTimeout, std::max(cap, absl::Seconds(1)));
  const bool spin = wait == wire::CompletionWait::kSpin;
  std::vector<std::uint64_t> alone, loaded;
  alone.reserve(opt.victim_samples);
  loaded.reserve(opt.victim_samples);
  bool timed_out = false;
  std::uint64_t agg_done = 0, agg_failed = 0, censored_t0 = 0, agg_rerung = 0;
  double window_s = 0, desc_ns = 0, censored_ns = 0, served_after_ns = 0;
  for (auto _ : state) {
    absl::Status s = RdmaVictimSamples(**q, spin, opt.victim_samples, interval, cap, timeout, alone,
                                       &timed_out, &censored_t0);
    if (s.ok() && timed_out) s = absl::DeadlineExceededError("victim NOP timed out alone");
    if (!s.ok()) return state.SkipWithError(("alone: " + s.ToString()).c_str());
    RdmaAggressor a;
    s = a.Start(t.options, opt.aggressor_bytes);
    if (!s.ok()) return state.SkipWithError(("aggressor: " + s.ToString()).c_str());
    desc_ns = a.desc_ns();
    const std::uint64_t done0 = a.completed();
    const absl::Time t0 = absl::Now();
    s = RdmaVictimSamples(**q, spin, opt.victim_samples, interval, cap, timeout, loaded, &timed_out,
                          &censored_t0);
    window_s = absl::ToDoubleSeconds(absl::Now() - t0);
    agg_done = a.completed() - done0;
    // The censored NOP, waited for while the aggressor stops submitting and drains: when it
    // completes, against the aggressor's last completion, shows whether ringd's rdma thread
    // served it between the aggressor's descriptors or only once the aggressor had run dry.
    std::string lost;
    std::uint64_t done_ticks = 0;
    if (s.ok() && timed_out) {
      a.RequestStop();
      Completion c{};
      auto n = (*q)->Reap(absl::MakeSpan(&c, 1), kDrainTimeout);
      done_ticks = Ticks();
      if (!n.ok() || *n == 0) lost = n.ok() ? "no completion" : n.status().ToString();
    }
    a.Stop();
    agg_failed = a.failed();
    agg_rerung = a.rerung();
    if (!s.ok()) return state.SkipWithError(("with aggressor: " + s.ToString()).c_str());
    if (!a.error().empty()) return state.SkipWithError(("aggressor: " + a.error()).c_str());
    if (agg_failed != 0) {
      return state.SkipWithError(
          absl::StrCat(agg_failed, " aggressor descriptors completed with an error").c_str());
    }
    if (!lost.empty()) return state.SkipWithError(("victim NOP lost: " + lost).c_str());
    if (timed_out) {
      censored_ns = static_cast<double>(done_ticks - censored_t0) / TicksPerNs();
      served_after_ns =
          (static_cast<double>(done_ticks) - static_cast<double>(a.last_completion_ticks())) /
          TicksPerNs();
    }
  }
  ReportPercentiles(state, "alone", alone);
  ReportPercentiles(state, "loaded", loaded);
  if (state.counters.count("alone_p99_ns") && state.counters.count("loaded_p99_ns")) {
    state.counters["p99_ratio"] = state.counters["loaded_p99_ns"] / state.counters["alone_p99_ns"];
  }
  state.counters["victim_timed_out"] = timed_out ? 1 : 0;
  state.counters["sample_timeout_s"] = absl::ToDoubleSeconds(timeout);
  if (timed_out) {
    // Submit to completion of the censored NOP, and its completion after (> 0) or before (< 0)
    // the aggressor's last one.
    state.counters["censored_nop_ns"] = censored_ns;
    state.counters["censored_nop_after_aggressor_ns"] = served_after_ns;
  }
  state.counters["aggressor_bytes"] = static_cast<double>(opt.aggressor_bytes);
  state.counters["aggressor_descs"] = static_cast<double>(agg_done);
  state.counters["aggressor_desc_ns"] = desc_ns;
  state.counters["aggressor_doorbells_rerung"] = static_cast<double>(agg_rerung);
  // Bytes of COPY and CHECKSUM work completed per second while the victim sampled.
  state.counters["aggressor_work_bytes_per_s"] =
      window_s > 0 ? static_cast<double>(agg_done * opt.aggressor_bytes) / window_s : 0;
  state.SetLabel(absl::StrCat("victim + aggressor cpu 0, ringd cpu 1 (rdma listener, ",
                              (*q)->device_name(), "); aggressor ", kAggressorCommits,
                              " commits of ", kAggressorCopies, " COPY + ", kAggressorChecksums,
                              " CHECKSUM ", SizeName(opt.aggressor_bytes), " in flight"));
}

// A second ringd (the peer), on this host: its own rdma port, cpu backend. Returns why not.
struct PeerRingd {
  std::unique_ptr<testing::RingdProcess> proc;
  std::uint16_t port = 0;
  bool stopped = false;
  ~PeerRingd() {
    if (proc != nullptr && stopped) kill(proc->pid(), SIGCONT);
  }
};

void BM_RdmaStalledPeerNop(benchmark::State& state, const Options& opt) {
  Transport& t = GetTransport();
  if (!t.error.empty()) return state.SkipWithError(t.error.c_str());
  PeerRingd peer;
  peer.port = static_cast<std::uint16_t>(t.options.port + 1);
  auto proc = testing::RingdProcess::Start(
      {"--backend=cpu", absl::StrCat("--rdma_port=", peer.port)});
  if (!proc.ok()) return state.SkipWithError(("peer ringd: " + proc.status().ToString()).c_str());
  peer.proc = std::move(*proc);
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  RdmaQueueOptions po = t.options;
  po.port = peer.port;
  auto owner = ConnectRetrying(po);
  if (!owner.ok()) return state.SkipWithError(("owner: " + owner.status().ToString()).c_str());
  auto target = (*owner)->CreateRegion(4096);
  if (!target.ok()) return state.SkipWithError(target.status().ToString().c_str());
  auto token = (*owner)->ExportRegion(*target);
  if (!token.ok()) return state.SkipWithError(token.status().ToString().c_str());
  auto writer = ConnectRetrying(t.options);
  RdmaQueueOptions vo = t.options;
  vo.completion_wait = wire::CompletionWait::kSpin;
  auto victim = ConnectRetrying(vo);
  if (!writer.ok() || !victim.ok()) return state.SkipWithError("writer or victim: connect failed");
  auto src = (*writer)->CreateRegion(4096);
  if (!src.ok()) return state.SkipWithError(src.status().ToString().c_str());
  // The peer link comes up and works before the stall.
  auto first = (*writer)->SubmitAndWait(
      RemoteWriteDescriptor(*token, 0, (*src)->handle(), 0, 4096, 1), absl::Seconds(30));
  if (!first.ok() || first->status != 0) {
    return state.SkipWithError("REMOTE_WRITE through the peer link failed before the stall");
  }
  for (int i = 0; i < 64; ++i) {
    auto c = (*victim)->SubmitAndWait(MakeNop(0), absl::Seconds(20));
    if (!c.ok()) return state.SkipWithError(("warm-up: " + c.status().ToString()).c_str());
  }
  // ringd's op timeout (10 s by default) ends the stall: the loaded phase stays within it.
  const absl::Duration cap = std::min(absl::Seconds(opt.victim_seconds), absl::Seconds(5));
  const absl::Duration timeout = absl::Seconds(20);
  std::vector<std::uint64_t> alone, loaded;
  bool timed_out = false, pending = false;
  std::uint64_t censored_t0 = 0;
  int stalled_status = -1;
  for (auto _ : state) {
    absl::Status s = RdmaVictimSamples(**victim, true, opt.victim_samples, absl::ZeroDuration(),
                                       cap, timeout, alone, &timed_out, &censored_t0);
    if (s.ok() && timed_out) s = absl::DeadlineExceededError("victim NOP timed out alone");
    if (!s.ok()) return state.SkipWithError(("alone: " + s.ToString()).c_str());
    if (kill(peer.proc->pid(), SIGSTOP) != 0) return state.SkipWithError("SIGSTOP failed");
    peer.stopped = true;
    const Descriptor stalled = RemoteWriteDescriptor(*token, 0, (*src)->handle(), 0, 4096, 2);
    if (!(*writer)->Submit(absl::MakeConstSpan(&stalled, 1)).ok()) {
      return state.SkipWithError("writer: Submit failed");
    }
    absl::SleepFor(absl::Milliseconds(20));  // ringd has forwarded the op and waits on the peer
    s = RdmaVictimSamples(**victim, true, opt.victim_samples, absl::ZeroDuration(), cap, timeout,
                          loaded, &timed_out, &censored_t0);
    Completion c{};
    auto n = (*writer)->Reap(absl::MakeSpan(&c, 1), absl::ZeroDuration());
    pending = n.ok() && *n == 0;
    kill(peer.proc->pid(), SIGCONT);
    peer.stopped = false;
    if (pending) n = (*writer)->Reap(absl::MakeSpan(&c, 1), absl::Seconds(30));
    if (n.ok() && *n == 1) stalled_status = c.status;
    if (!s.ok()) return state.SkipWithError(("stalled: " + s.ToString()).c_str());
  }
  ReportPercentiles(state, "alone", alone);
  ReportPercentiles(state, "loaded", loaded);
  if (state.counters.count("alone_p99_ns") && state.counters.count("loaded_p99_ns")) {
    state.counters["p99_ratio"] = state.counters["loaded_p99_ns"] / state.counters["alone_p99_ns"];
  }
  state.counters["victim_timed_out"] = timed_out ? 1 : 0;
  state.counters["stalled_op_pending"] = pending ? 1 : 0;
  state.counters["stalled_op_status"] = stalled_status;
  state.SetLabel(absl::StrCat("victim + writer cpu 0, ringd cpu 1 (rdma listener, ",
                              (*victim)->device_name(), "); peer ringd SIGSTOPped"));
}

}  // namespace
}  // namespace pinring::bench

int main(int argc, char** argv) {
  using namespace pinring::bench;
  return RunMain(argc, argv, [](const Options& o) {
    RdmaPollUs() = o.rdma_poll_us;
    benchmark::AddCustomContext("pinring_rdma_poll_us",
                                o.rdma_poll_us.empty() ? "ringd default" : o.rdma_poll_us);
    for (auto [name, copy, pull] : {std::tuple{"BM_RdmaTransportRoundTrip/nop", false, false},
                                    std::tuple{"BM_RdmaTransportRoundTrip/nop_pull", false, true},
                                    std::tuple{"BM_RdmaTransportRoundTrip/copy_8B", true, false}}) {
      benchmark::RegisterBenchmark(name, BM_RdmaTransportRoundTrip, copy, pull)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
    for (auto [name, pull] : {std::tuple{"BM_RdmaTransportBatch/inline", false},
                              std::tuple{"BM_RdmaTransportBatch/pull", true}}) {
      benchmark::RegisterBenchmark(name, BM_RdmaTransportBatch, pull)
          ->ArgName("batch")
          ->Arg(1)
          ->Arg(2)
          ->Arg(4)
          ->Arg(8)
          ->Arg(16)
          ->Arg(32)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
    benchmark::AddCustomContext("pinring_victim_samples", std::to_string(o.victim_samples));
    benchmark::AddCustomContext("pinring_victim_interval_us", std::to_string(o.victim_interval_us));
    benchmark::AddCustomContext("pinring_victim_seconds", std::to_string(o.victim_seconds));
    benchmark::AddCustomContext("pinring_aggressor_bytes", std::to_string(o.aggressor_bytes));
    for (auto [name, wait] :
         {std::tuple{"BM_RdmaVictimNop/spin", pinring::wire::CompletionWait::kSpin},
          std::tuple{"BM_RdmaVictimNop/block", pinring::wire::CompletionWait::kBlock}}) {
      benchmark::RegisterBenchmark(name, BM_RdmaVictimNop, wait, o)
          ->Iterations(1)  // one iteration is the whole bounded measurement
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark("BM_RdmaStalledPeerNop", BM_RdmaStalledPeerNop, o)
        ->Iterations(1)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  });
}
