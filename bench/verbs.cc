// pinring-bench-verbs: ringd-mediated RDMA WRITE on a real (or soft-RoCE) device. ringd runs with
// --backend=verbs, where a COPY descriptor is executed as an RDMA WRITE from the source MR to the
// destination MR over ringd's loopback RC QP pair. The anchors are perftest's ib_write_lat and
// ib_write_bw on the same device in the same boot (run by bench/run-benchmarks).
//
//   BM_RingdWriteLatency/<size>   one COPY at a time: submit, spin for its completion
//   BM_RingdWriteRate/<size>      a pipeline of kDepth COPYs in flight; each completion is refilled
//                                 at once, as ib_write_bw keeps its send queue full
//   BM_BareVerbsWriteLatency/<size>  the fair anchor of BM_RingdWriteLatency: this process opens
//                                 the device itself and, per iteration, posts one signaled RDMA
//                                 WRITE on a loopback RC QP pair and polls the CQ until it
//                                 completes. ringd does exactly this per COPY; ib_write_lat
//                                 instead reports half a ping-pong detected by polling memory
//   BM_VictimNop/{busy-poll,eventfd}  tenant isolation with the verbs backend: a victim's NOP
//                                 round trip alone and under an aggressor client (victim.h)
//
// Without a device ringd cannot start its verbs backend and every row is skipped with the reason.
#include <infiniband/verbs.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "bench_util.h"
#include "pinring/descriptors.h"
#include "ringd_fixture.h"
#include "verbs/verbs_device.h"
#include "victim.h"

namespace pinring::bench {
namespace {

constexpr std::uint64_t kMaxSize = 1ull << 20;
constexpr std::uint32_t kDepth = 64;

struct Regions {
  Region src;
  Region dst;
  std::string error;
};

RingdFixture& Ringd() { return GetRingd({"--backend=verbs"}); }

Regions& GetRegions() {
  static Regions r = [] {
    Regions out;
    RingdFixture& f = Ringd();
    if (!f.error.empty()) {
      out.error = f.error;
      return out;
    }
    auto s = f.client.CreateRegion({.size = kMaxSize});
    auto d = f.client.CreateRegion({.size = kMaxSize});
    if (!s.ok() || !d.ok()) {
      out.error = "CreateRegion: " + (s.ok() ? d.status() : s.status()).ToString();
      return out;
    }
    out.src = std::move(*s);
    out.dst = std::move(*d);
    return out;
  }();
  return r;
}

void BM_RingdWriteLatency(benchmark::State& state) {
  Regions& r = GetRegions();
  if (!r.error.empty()) return state.SkipWithError(r.error.c_str());
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  const auto size = static_cast<std::uint64_t>(state.range(0));
  QueueOptions o;
  o.doorbell = wire::DoorbellMode::kBusyPoll;
  o.completion_wait = wire::CompletionWait::kSpin;
  auto q = ReadyQueue(Ringd(), o);
  if (!q.ok()) return state.SkipWithError(q.status().ToString().c_str());
  LatencyRecorder lat(state);
  std::uint64_t seq = 0;
  int status = 0;
  // Untimed warm-up of the COPY path itself (ReadyQueue only ran NOPs): the first WRITEs of a
  // size pay the device's first touch of the MRs, which is not what the row measures.
  for (int i = 0; i < 64 && status == 0; ++i) {
    while (q->Reserve(1) == 0) {
    }
    q->Slot(0) = MakeCopy(r.src.handle(), 0, r.dst.handle(), 0, size, ++seq);
    q->Commit(1);
    status = SpinForCompletions(*q, 1) ? q->CompletionAt(0).status : -1;
    if (status >= 0) q->ReleaseCompletions(1);
  }
  for (auto _ : state) {
    if (status != 0) break;
    const std::uint64_t t0 = Ticks();
    while (q->Reserve(1) == 0) {
    }
    q->Slot(0) = MakeCopy(r.src.handle(), 0, r.dst.handle(), 0, size, ++seq);
    q->Commit(1);
    if (!SpinForCompletions(*q, 1)) {
      status = -1;
      break;
    }
    status = q->CompletionAt(0).status;
    q->ReleaseCompletions(1);
    lat.Add(Ticks() - t0);
    if (status != 0) break;
  }
  if (status != 0) {
    const std::string why = status < 0 ? q->Health().ToString()
                                       : std::string("completion status ") +
                                             CompletionStatusName(CompletionStatus{status});
    return state.SkipWithError(why.c_str());
  }
  lat.Report(state);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
  state.SetLabel(Ringd().client.info().device);
}

// The device opened by this process, a loopback QP pair and two registered kMaxSize buffers.
struct BareVerbs {
  std::unique_ptr<VerbsDevice> dev;
  std::unique_ptr<LoopbackQp> qp;
  MemoryRegion src, dst;
  std::string error;
};

BareVerbs& GetBareVerbs() {
  static BareVerbs b = [] {
    BareVerbs out;
    auto dev = VerbsDevice::Open();
    if (!dev.ok()) {
      out.error = "VerbsDevice::Open: " + dev.status().ToString();
      return out;
    }
    out.dev = std::move(*dev);
    auto qp = LoopbackQp::Create(*out.dev, 16);
    if (!qp.ok()) {
      out.error = "LoopbackQp::Create: " + qp.status().ToString();
      return out;
    }
    out.qp = std::move(*qp);
    MemoryRegion* mrs[2] = {&out.src, &out.dst};
    for (MemoryRegion* mr : mrs) {
      void* p = mmap(nullptr, kMaxSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        out.error = "mmap failed";
        return out;
      }
      std::memset(p, 0x5a, kMaxSize);  // faulted in before registration, as ringd's regions are
      auto r = out.dev->Register(p, kMaxSize,
                                 IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
      if (!r.ok()) {
        out.error = "ibv_reg_mr: " + r.status().ToString();
        return out;
      }
      *mr = std::move(*r);  // the buffers live as long as the process
    }
    return out;
  }();
  return b;
}

void BM_BareVerbsWriteLatency(benchmark::State& state) {
  BareVerbs& b = GetBareVerbs();
  if (!b.error.empty()) return state.SkipWithError(b.error.c_str());
  if (b.qp->broken()) return state.SkipWithError("the QP broke in an earlier size's row");
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  const auto size = static_cast<std::uint64_t>(state.range(0));
  LatencyRecorder lat(state);
  std::uint64_t id = 0;
  std::string error;
  ibv_wc wc[4];
  // Untimed warm-up, as BM_RingdWriteLatency's.
  for (int i = 0; i < 64 && error.empty(); ++i) {
    if (absl::Status st = b.qp->Write(b.src, 0, b.dst, 0, size); !st.ok()) error = st.ToString();
  }
  for (auto _ : state) {
    if (!error.empty()) break;
    const std::uint64_t t0 = Ticks();
    if (absl::Status st = b.qp->PostWrite(b.src, 0, b.dst, 0, size, ++id, /*signaled=*/true);
        !st.ok()) {
      error = st.ToString();
      break;
    }
    bool done = false;
    const std::uint64_t give_up = Ticks() + static_cast<std::uint64_t>(30e9 * TicksPerNs());
    while (!done && error.empty()) {
      auto n = b.qp->Poll(absl::MakeSpan(wc));
      if (!n.ok()) error = n.status().ToString();
      for (int i = 0; n.ok() && i < *n; ++i) {
        if (wc[i].status != IBV_WC_SUCCESS) error = ibv_wc_status_str(wc[i].status);
        done |= wc[i].wr_id == id;
      }
      if (!done && Ticks() > give_up) error = "no completion within 30 s";
    }
    if (!error.empty()) break;
    lat.Add(Ticks() - t0);
  }
  if (!error.empty()) return state.SkipWithError(error.c_str());
  lat.Report(state);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
  state.SetLabel(b.dev->name());
}

void BM_RingdWriteRate(benchmark::State& state) {
  Regions& r = GetRegions();
  if (!r.error.empty()) return state.SkipWithError(r.error.c_str());
  ScopedAffinity restore;
  PinToCpu(kCpuA);
  const auto size = static_cast<std::uint64_t>(state.range(0));
  QueueOptions o;
  o.sq_entries = 2 * kDepth;
  o.doorbell = wire::DoorbellMode::kBusyPoll;
  o.completion_wait = wire::CompletionWait::kSpin;
  auto q = ReadyQueue(Ringd(), o);
  if (!q.ok()) return state.SkipWithError(q.status().ToString().c_str());
  std::uint64_t seq = 0;
  auto refill = [&](std::uint32_t want) {
    const std::uint32_t n = q->Reserve(want);
    for (std::uint32_t i = 0; i < n; ++i) {
      q->Slot(i) = MakeCopy(r.src.handle(), 0, r.dst.handle(), 0, size, ++seq);
    }
    q->Commit(n);
  };
  refill(kDepth);
  std::uint64_t done = 0;
  int bad = 0;
  // One iteration = reap whatever has completed (at least one) and refill that many.
  for (auto _ : state) {
    std::uint32_t n;
    std::uint64_t spins = 0;
    while ((n = q->PeekCompletions(kDepth)) == 0) {
      if ((++spins & 0xffffff) == 0 && !q->Health().ok()) break;
    }
    if (n == 0) {
      bad = -1;
      break;
    }
    for (std::uint32_t i = 0; i < n; ++i) bad |= q->CompletionAt(i).status;
    q->ReleaseCompletions(n);
    done += n;
    refill(n);
    if (bad != 0) break;
  }
  // Drain what is still in flight so the queue is destroyed idle.
  while (q->InFlight() > 0 && SpinForCompletions(*q, 1))
    q->ReleaseCompletions(q->PeekCompletions(kDepth));
  if (bad != 0)
    return state.SkipWithError("a COPY failed (bad completion status or queue unusable)");
  state.SetItemsProcessed(static_cast<std::int64_t>(done));
  state.SetBytesProcessed(static_cast<std::int64_t>(done * size));
  state.counters["depth"] = kDepth;
  state.SetLabel(Ringd().client.info().device);
}

}  // namespace
}  // namespace pinring::bench

int main(int argc, char** argv) {
  using namespace pinring::bench;
  return RunMain(argc, argv, [](const Options& o) {
    // 8 B to 1 MiB, every 8x (capped by --pinring_max_bytes in quick mode).
    for (const char* name :
         {"BM_RingdWriteLatency", "BM_BareVerbsWriteLatency", "BM_RingdWriteRate"}) {
      const std::string n = name;
      auto* b = benchmark::RegisterBenchmark(
          name, n == "BM_RingdWriteLatency"       ? BM_RingdWriteLatency
                : n == "BM_BareVerbsWriteLatency" ? BM_BareVerbsWriteLatency
                                                  : BM_RingdWriteRate);
      b->ArgName("bytes")->UseRealTime()->Unit(benchmark::kMicrosecond);
      for (std::uint64_t s = 8; s <= kMaxSize && s <= o.max_bytes; s *= 8) {
        b->Arg(static_cast<std::int64_t>(s));
      }
      if (kMaxSize <= o.max_bytes) b->Arg(static_cast<std::int64_t>(kMaxSize));
    }
    RegisterVictimBenchmarks(&Ringd, o);
  });
}
