// pinring-bench-rdma: the rdma transport (docs/rdma-transport.md) on a real or soft-RoCE device.
// The client keeps its rings in its own registered memory; one round trip is: write the
// descriptor, SEND the doorbell, ringd RDMA-READs the descriptor, executes it, RDMA-WRITEs the
// completion and SENDs the notification, the client polls its CQ. The anchors are perftest's
// ib_send_lat and ib_read_lat, 8 B, on the same device in the same boot (bench/run-benchmarks).
//
//   BM_RdmaTransportRoundTrip/nop        NOP: the transport alone (doorbell, READ, WRITE, SEND)
//   BM_RdmaTransportRoundTrip/copy_8B    COPY of 8 B between two of the client's regions, which
//                                        ringd moves with RDMA READ + WRITE on the client's memory
//
// ringd is a real process (--backend=verbs --rdma_port=P), spawned pinned to kCpuB; the client
// spins on kCpuA. Without a device ringd has no rdma listener and every row is skipped with why.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "bench_util.h"
#include "pinring/descriptors.h"
#include "pinring/rdma_queue.h"
#include "pinring/verbs_device.h"
#include "ringd_fixture.h"
#include "tests/common/self_rdma_address.h"

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

struct Transport {
  std::unique_ptr<RdmaQueue> q;
  RdmaRegion* src = nullptr;
  RdmaRegion* dst = nullptr;
  std::string error;  // non-empty: no device, ringd or connection; every row skips with it
};

Transport& GetTransport() {
  static const std::uint16_t port = RdmaPort();
  static Transport t = [] {
    Transport out;
    RingdFixture& f = GetRingd({"--backend=verbs", "--rdma_port=" + std::to_string(port)});
    if (!f.error.empty()) {
      out.error = f.error;
      return out;
    }
    RdmaQueueOptions o;
    o.address = testing::SelfRdmaAddress();  // ringd is on this host
    if (o.address.empty()) {
      out.error = std::string("no RDMA device with an IPv4 GID: ") + std::string(kNoDeviceFix);
      return out;
    }
    o.port = port;
    o.sq_entries = 64;
    o.completion_wait = wire::CompletionWait::kSpin;
    o.timeout = absl::Seconds(20);
    // ringd opens its rdma listener after its control socket: retry while it comes up.
    absl::Status last;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    ScopedAffinity restore;
    PinToCpu(kCpuA);
    while (absl::Now() < deadline) {
      auto q = RdmaQueue::Connect(o);
      if (q.ok()) {
        out.q = std::move(*q);
        break;
      }
      last = q.status();
      absl::SleepFor(absl::Milliseconds(200));
    }
    if (out.q == nullptr) {
      out.error =
          "RdmaQueue::Connect(" + o.address + ":" + std::to_string(port) + "): " + last.ToString();
      return out;
    }
    auto s = out.q->CreateRegion(4096);
    auto d = out.q->CreateRegion(4096);
    if (!s.ok() || !d.ok()) {
      out.error = "CreateRegion: " + (s.ok() ? d.status() : s.status()).ToString();
      return out;
    }
    out.src = *s;
    out.dst = *d;
    return out;
  }();
  return t;
}

// One descriptor at a time, submit to reaped completion.
void BM_RdmaTransportRoundTrip(benchmark::State& state, bool copy) {
  Transport& t = GetTransport();
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

}  // namespace
}  // namespace pinring::bench

int main(int argc, char** argv) {
  using namespace pinring::bench;
  return RunMain(argc, argv, [](const Options&) {
    benchmark::RegisterBenchmark("BM_RdmaTransportRoundTrip/nop",
                                 [](benchmark::State& s) { BM_RdmaTransportRoundTrip(s, false); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("BM_RdmaTransportRoundTrip/copy_8B",
                                 [](benchmark::State& s) { BM_RdmaTransportRoundTrip(s, true); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  });
}
