// pinring-bench-shm: the shm transport through a real ringd (--backend=cpu), measured the way the
// baselines in pinring-bench-baselines are (pinned CPUs, TSC timing, p50/p99/p99.9 counters).
//
//   BM_ShmNopRoundTrip/busy-poll   one NOP: Reserve/Slot/Commit, spin on PeekCompletions.
//                                  ringd's poller spins on the ring (DoorbellMode::kBusyPoll).
//   BM_ShmNopRoundTrip/eventfd     one NOP; ringd sleeps and is woken through the doorbell eventfd
//                                  when it set need-wakeup; the client blocks on the completion
//                                  eventfd (CompletionWait::kBlock). Anchor: eventfd ping-pong.
//   BM_ShmNopRoundTrip/adaptive    one NOP; ringd spins adaptive_poll_us after work, then sleeps;
//                                  the client spins.
//   BM_ShmNopBatch/batch:B         B NOPs committed at once (one doorbell decision), then spin for
//                                  B completions: the shape of io_uring_submit_and_wait(B).
//   BM_ShmNopStream/batch:B        throughput with the ring kept busy, as a ring is used: commit
//                                  B NOPs whenever B slots are free, reap whatever has completed;
//                                  up to kStreamDepth NOPs in flight, so the client's writing and
//                                  ringd's serving overlap. One iteration = one batch.
//   BM_VictimNop/{busy-poll,eventfd}  tenant isolation: a victim's NOP round trip alone and while
//                                  an aggressor client of the same ringd floods it with 64 MiB
//                                  COPY + CHECKSUM commits (victim.h). Run on its own with
//                                  --benchmark_filter=^BM_VictimNop/ (bench/run-benchmarks does).
#include <cstdint>
#include <string>

#include "bench_util.h"
#include "pinring/descriptors.h"
#include "ringd_fixture.h"
#include "victim.h"

namespace pinring::bench {
namespace {

RingdFixture& Ringd() { return GetRingd({"--backend=cpu"}); }

// A warmed-up queue on the shared ringd (see ReadyQueue). Call after pinning the thread.
absl::StatusOr<Queue> MakeQueue(wire::DoorbellMode doorbell, wire::CompletionWait wait) {
  QueueOptions o;
  o.sq_entries = 256;
  o.doorbell = doorbell;
  o.completion_wait = wait;
  return ReadyQueue(Ringd(), o);
}

void BM_ShmNopRoundTrip(benchmark::State& state, wire::DoorbellMode doorbell,
                        wire::CompletionWait wait) {
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  auto q = MakeQueue(doorbell, wait);
  if (!q.ok()) return state.SkipWithError(q.status().ToString().c_str());
  LatencyRecorder lat(state);
  std::uint64_t seq = 0;
  bool ok = true;
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    while (q->Reserve(1) == 0) {
    }
    q->Slot(0) = MakeNop(++seq);
    q->Commit(1);
    if (wait == wire::CompletionWait::kSpin) {
      ok = SpinForCompletions(*q, 1);
    } else {
      ok = q->WaitCompletions(1, absl::Seconds(10)).ok();
    }
    if (!ok) break;
    ok = q->CompletionAt(0).user_data == seq;
    q->ReleaseCompletions(1);
    lat.Add(Ticks() - t0);
  }
  if (!ok) return state.SkipWithError(std::string(q->Health().ToString()).c_str());
  lat.Report(state);
  state.SetItemsProcessed(state.iterations());
  state.counters["doorbells"] = static_cast<double>(q->doorbells_rung());
  state.SetLabel("client cpu 0, ringd cpu 1");
}

void BM_ShmNopBatch(benchmark::State& state) {
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  const auto batch = static_cast<std::uint32_t>(state.range(0));
  auto q = MakeQueue(wire::DoorbellMode::kBusyPoll, wire::CompletionWait::kSpin);
  if (!q.ok()) return state.SkipWithError(q.status().ToString().c_str());
  LatencyRecorder lat(state);
  std::uint64_t seq = 0;
  bool ok = true;
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    std::uint32_t n;
    while ((n = q->Reserve(batch)) < batch) {
    }
    for (std::uint32_t i = 0; i < batch; ++i) q->Slot(i) = MakeNop(++seq);
    q->Commit(batch);
    if (!(ok = SpinForCompletions(*q, batch))) break;
    q->ReleaseCompletions(batch);
    lat.Add(Ticks() - t0);
  }
  if (!ok) return state.SkipWithError(std::string(q->Health().ToString()).c_str());
  lat.Report(state);  // per batch
  state.SetItemsProcessed(state.iterations() * batch);
  // Bytes moved through the rings: a 64 B descriptor out and a 32 B completion back per NOP.
  state.SetBytesProcessed(state.iterations() * batch *
                          static_cast<std::int64_t>(sizeof(Descriptor) + sizeof(Completion)));
  state.SetLabel("client cpu 0, ringd cpu 1");
}

constexpr std::uint32_t kStreamDepth = 256;  // NOPs in flight (= the SQ size of MakeQueue)

void BM_ShmNopStream(benchmark::State& state) {
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  const auto batch = static_cast<std::uint32_t>(state.range(0));
  auto q = MakeQueue(wire::DoorbellMode::kBusyPoll, wire::CompletionWait::kSpin);
  if (!q.ok()) return state.SkipWithError(q.status().ToString().c_str());
  std::uint64_t submitted = 0, reaped = 0;
  bool ok = true;
  auto reap = [&] {
    const std::uint32_t n = q->PeekCompletions(kStreamDepth);
    for (std::uint32_t i = 0; i < n; ++i) ok &= q->CompletionAt(i).user_data == reaped + i + 1;
    q->ReleaseCompletions(n);
    reaped += n;
  };
  for (auto _ : state) {
    std::uint64_t spins = 0;
    bool room = true;
    // Room for a whole batch in flight, and in the SQ; otherwise reap until there is. Health()
    // (a ppoll of the control socket) only after a long fruitless spin, never per batch.
    while (submitted - reaped + batch > kStreamDepth || q->Reserve(batch) < batch) {
      reap();
      if ((++spins & 0xffffff) == 0 && !q->Health().ok()) {
        room = false;
        break;
      }
    }
    if (!room || !ok) break;
    for (std::uint32_t i = 0; i < batch; ++i) q->Slot(i) = MakeNop(++submitted);
    q->Commit(batch);
    reap();
  }
  while (ok && reaped < submitted && SpinForCompletions(*q, 1)) reap();  // drain: end idle
  if (!ok || reaped != submitted) {
    return state.SkipWithError(
        ("lost or out-of-order completions; " + q->Health().ToString()).c_str());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch *
                          static_cast<std::int64_t>(sizeof(Descriptor) + sizeof(Completion)));
  state.counters["in_flight_max"] = kStreamDepth;
  state.SetLabel("client cpu 0, ringd cpu 1");
}

}  // namespace
}  // namespace pinring::bench

int main(int argc, char** argv) {
  using namespace pinring::bench;
  using pinring::wire::CompletionWait;
  using pinring::wire::DoorbellMode;
  return RunMain(argc, argv, [](const Options& o) {
    benchmark::RegisterBenchmark("BM_ShmNopRoundTrip/busy-poll", BM_ShmNopRoundTrip,
                                 DoorbellMode::kBusyPoll, CompletionWait::kSpin)
        ->UseRealTime();
    benchmark::RegisterBenchmark("BM_ShmNopRoundTrip/eventfd", BM_ShmNopRoundTrip,
                                 DoorbellMode::kEventfd, CompletionWait::kBlock)
        ->UseRealTime();
    benchmark::RegisterBenchmark("BM_ShmNopRoundTrip/adaptive", BM_ShmNopRoundTrip,
                                 DoorbellMode::kAdaptive, CompletionWait::kSpin)
        ->UseRealTime();
    benchmark::RegisterBenchmark("BM_ShmNopBatch", BM_ShmNopBatch)
        ->ArgName("batch")
        ->Arg(1)
        ->Arg(8)
        ->Arg(32)
        ->Arg(128)
        ->UseRealTime();
    benchmark::RegisterBenchmark("BM_ShmNopStream", BM_ShmNopStream)
        ->ArgName("batch")
        ->Arg(1)
        ->Arg(8)
        ->Arg(32)
        ->Arg(128)
        ->UseRealTime();
    RegisterVictimBenchmarks(&Ringd, o);
  });
}
