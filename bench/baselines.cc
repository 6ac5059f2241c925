// pinring-bench-baselines: the anchors every pinring row is compared with, measured by the same
// binary conventions (pinned CPUs, TSC per-iteration timing, p50/p99/p99.9 counters):
//
//   BM_SpscPingPong/threads     pinring's own spsc_ring.h, two threads, one descriptor out and one
//   BM_SpscPingPong/processes   completion back: the floor of a shared-memory round trip
//   BM_EventfdPingPong          two processes waking each other through two eventfds
//   BM_IoUringNop/batch:B       io_uring NOPs, B per io_uring_submit_and_wait (B=1 is the round
//   trip)
//   BM_SpscStream/batch:B       the floor of pinring's streamed row (BM_ShmNopStream): the same
//                               bytes move between two processes (a 64-byte descriptor out, a
//                               32-byte completion back, B per commit, up to kStreamDepth in
//                               flight) with no validation and no execution at all
//
// Ping-pong peers run on kCpuA (measuring side) and kCpuB (echoing side).
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "bench_util.h"
#include "pinring/descriptors.h"
#include "pinring/ring_format.h"
#include "pinring/spsc_ring.h"

namespace pinring::bench {
namespace {

constexpr std::uint32_t kRingEntries = 256;
constexpr std::uint8_t kStopOpcode =
    0xff;  // private to this benchmark: tells the echo side to quit

// One queue's worth of shared memory: the real header (indices on their own cache lines) and the
// two rings, in an anonymous MAP_SHARED mapping so it survives fork() as shared memory.
struct PingPongRings {
  QueueHeader header;
  alignas(kCacheLineSize) Descriptor sq[kRingEntries];
  alignas(kCacheLineSize) Completion cq[kRingEntries];
};

PingPongRings* MapRings() {
  void* p = mmap(nullptr, sizeof(PingPongRings), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) return nullptr;
  return new (p) PingPongRings{};
}

void UnmapRings(PingPongRings* r) { munmap(r, sizeof(PingPongRings)); }

// The echo side: consume a descriptor, produce its completion. Spins without pause: this is the
// floor a busy-polling daemon could reach.
void EchoLoop(PingPongRings* r) {
  SubmissionConsumer sq(r->sq, kRingEntries, &r->header.sq_head.value, &r->header.sq_tail.value);
  CompletionProducer cq(r->cq, kRingEntries, &r->header.cq_tail.value, &r->header.cq_head.value);
  for (;;) {
    std::uint32_t n;
    while ((n = sq.Peek(kRingEntries)) == 0) {
    }
    std::uint32_t room;
    while ((room = cq.Reserve(n)) < n) {
    }
    bool stop = false;
    for (std::uint32_t i = 0; i < n; ++i) {
      const Descriptor d = sq.CopyOut(i);
      stop |= d.opcode == kStopOpcode;
      Completion& c = cq.Slot(i);
      c.user_data = d.user_data;
      c.result = 0;
      c.status = static_cast<std::int32_t>(CompletionStatus::kOk);
    }
    sq.Release(n);
    cq.Commit(n);
    if (stop) return;
  }
}

// Stops EchoLoop: a descriptor it recognises, whose completion is drained. REQUIRES: every
// earlier completion reaped.
void StopEcho(SubmissionProducer& sq, CompletionConsumer& cq) {
  while (sq.Reserve(1) == 0) {
  }
  sq.Slot(0) = Descriptor{};
  sq.Slot(0).opcode = kStopOpcode;
  sq.Commit(1);
  while (cq.Peek(1) == 0) {
  }
  cq.Release(1);
}

// The measuring side: one NOP descriptor out, wait for its completion, per iteration.
void PingLoop(benchmark::State& state, PingPongRings* r) {
  SubmissionProducer sq(r->sq, kRingEntries, &r->header.sq_tail.value, &r->header.sq_head.value);
  CompletionConsumer cq(r->cq, kRingEntries, &r->header.cq_head.value, &r->header.cq_tail.value);
  LatencyRecorder lat(state);
  std::uint64_t seq = 0;
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    while (sq.Reserve(1) == 0) {
    }
    Descriptor& d = sq.Slot(0);
    d = Descriptor{};
    d.user_data = ++seq;
    d.opcode = static_cast<std::uint8_t>(Opcode::kNop);
    sq.Commit(1);
    while (cq.Peek(1) == 0) {
    }
    benchmark::DoNotOptimize(cq.Slot(0).user_data);
    cq.Release(1);
    lat.Add(Ticks() - t0);
  }
  StopEcho(sq, cq);
  lat.Report(state);
  state.SetItemsProcessed(state.iterations());
}

void BM_SpscPingPongThreads(benchmark::State& state) {
  ScopedAffinity restore;
  PingPongRings* r = MapRings();
  if (r == nullptr) return state.SkipWithError("mmap failed");
  const bool pinned = PinToCpu(kCpuA);
  std::thread echo([r] {
    PinToCpu(kCpuB);
    EchoLoop(r);
  });
  PingLoop(state, r);
  echo.join();
  UnmapRings(r);
  state.SetLabel(pinned ? "cpus 0,1" : "unpinned");
}

// Runs `measure(state, rings)` on kCpuA against EchoLoop in a forked child on kCpuB, over one
// MAP_SHARED pair of rings; `measure` stops the echo side (kStopOpcode) before it returns.
template <typename Measure>
void AgainstEchoProcess(benchmark::State& state, Measure measure) {
  ScopedAffinity restore;
  PingPongRings* r = MapRings();
  if (r == nullptr) return state.SkipWithError("mmap failed");
  const bool pinned = PinToCpu(kCpuA);
  const pid_t child = fork();
  if (child < 0) return state.SkipWithError("fork failed");
  if (child == 0) {
    PinToCpu(kCpuB);
    EchoLoop(r);
    _exit(0);
  }
  measure(state, r);
  int st = 0;
  waitpid(child, &st, 0);
  UnmapRings(r);
  state.SetLabel(pinned ? "cpus 0,1" : "unpinned");
}

void BM_SpscPingPongProcesses(benchmark::State& state) { AgainstEchoProcess(state, PingLoop); }

constexpr std::uint32_t kStreamDepth = 256;  // = BM_ShmNopStream's, = kRingEntries

// The streaming client of BM_SpscStream: commit `batch` NOPs whenever that many slots are free
// (and fewer than kStreamDepth are in flight), reap whatever has completed, check every
// user_data, exactly as BM_ShmNopStream does against ringd. One iteration = one batch.
void StreamLoop(benchmark::State& state, PingPongRings* r, std::uint32_t batch) {
  SubmissionProducer sq(r->sq, kRingEntries, &r->header.sq_tail.value, &r->header.sq_head.value);
  CompletionConsumer cq(r->cq, kRingEntries, &r->header.cq_head.value, &r->header.cq_tail.value);
  std::uint64_t submitted = 0, reaped = 0;
  bool ok = true;
  auto reap = [&] {
    const std::uint32_t n = cq.Peek(kStreamDepth);
    for (std::uint32_t i = 0; i < n; ++i) ok &= cq.Slot(i).user_data == reaped + i + 1;
    cq.Release(n);
    reaped += n;
  };
  for (auto _ : state) {
    while (submitted - reaped + batch > kStreamDepth || sq.Reserve(batch) < batch) reap();
    for (std::uint32_t i = 0; i < batch; ++i) sq.Slot(i) = MakeNop(++submitted);
    sq.Commit(batch);
    reap();
  }
  while (reaped < submitted) reap();
  StopEcho(sq, cq);
  if (!ok) return state.SkipWithError("lost or out-of-order completions");
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch * (sizeof(Descriptor) + sizeof(Completion)));
}

void BM_SpscStream(benchmark::State& state) {
  AgainstEchoProcess(state, [](benchmark::State& s, PingPongRings* r) {
    StreamLoop(s, r, static_cast<std::uint32_t>(s.range(0)));
  });
}

// eventfd values: 1 = ping/pong, kEventfdStop = the echo side quits.
constexpr std::uint64_t kEventfdStop = 1u << 20;

void BM_EventfdPingPong(benchmark::State& state) {
  ScopedAffinity restore;
  const int ping = eventfd(0, EFD_CLOEXEC);
  const int pong = eventfd(0, EFD_CLOEXEC);
  if (ping < 0 || pong < 0) return state.SkipWithError("eventfd failed");
  const bool pinned = PinToCpu(kCpuA);
  const pid_t child = fork();
  if (child < 0) return state.SkipWithError("fork failed");
  if (child == 0) {
    PinToCpu(kCpuB);
    for (;;) {
      std::uint64_t v = 0;
      if (read(ping, &v, sizeof v) != sizeof v) _exit(1);
      const std::uint64_t one = 1;
      if (write(pong, &one, sizeof one) != sizeof one) _exit(1);
      if (v >= kEventfdStop) _exit(0);
    }
  }
  LatencyRecorder lat(state);
  bool ok = true;
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    std::uint64_t v = 1;
    ok &= write(ping, &v, sizeof v) == sizeof v;
    ok &= read(pong, &v, sizeof v) == sizeof v;
    lat.Add(Ticks() - t0);
  }
  std::uint64_t v = kEventfdStop;
  ok &= write(ping, &v, sizeof v) == sizeof v;
  ok &= read(pong, &v, sizeof v) == sizeof v;
  int st = 0;
  waitpid(child, &st, 0);
  close(ping);
  close(pong);
  if (!ok) return state.SkipWithError("eventfd read/write failed");
  lat.Report(state);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(pinned ? "cpus 0,1" : "unpinned");
}

// io_uring NOPs: `batch` SQEs, one io_uring_submit_and_wait for all their completions, then reap.
// batch 1 is the round trip of a single NOP (one syscall: submit + wait).
void BM_IoUringNop(benchmark::State& state) {
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  const unsigned batch = static_cast<unsigned>(state.range(0));
  io_uring ring;
  if (int rc = io_uring_queue_init(256, &ring, 0); rc < 0) {
    return state.SkipWithError(("io_uring_queue_init: " + std::string(strerror(-rc))).c_str());
  }
  LatencyRecorder lat(state);
  bool ok = true;
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    for (unsigned i = 0; i < batch; ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_nop(sqe);
      sqe->user_data = i;
    }
    ok &= io_uring_submit_and_wait(&ring, batch) == static_cast<int>(batch);
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ok &= cqe->res == 0;
      ++seen;
    }
    io_uring_cq_advance(&ring, seen);
    ok &= seen == batch;
    lat.Add(Ticks() - t0);
  }
  io_uring_queue_exit(&ring);
  if (!ok) return state.SkipWithError("io_uring NOP failed or lost a completion");
  lat.Report(state);  // per batch
  state.SetItemsProcessed(state.iterations() * batch);
}

}  // namespace
}  // namespace pinring::bench

int main(int argc, char** argv) {
  using namespace pinring::bench;
  return RunMain(argc, argv, [](const Options&) {
    benchmark::RegisterBenchmark("BM_SpscPingPong/threads", BM_SpscPingPongThreads)->UseRealTime();
    benchmark::RegisterBenchmark("BM_SpscPingPong/processes", BM_SpscPingPongProcesses)
        ->UseRealTime();
    benchmark::RegisterBenchmark("BM_SpscStream", BM_SpscStream)
        ->ArgName("batch")
        ->Arg(32)
        ->UseRealTime();
    benchmark::RegisterBenchmark("BM_EventfdPingPong", BM_EventfdPingPong)->UseRealTime();
    benchmark::RegisterBenchmark("BM_IoUringNop", BM_IoUringNop)
        ->ArgName("batch")
        ->Arg(1)
        ->Arg(8)
        ->Arg(32)
        ->Arg(128)
        ->UseRealTime();
  });
}
