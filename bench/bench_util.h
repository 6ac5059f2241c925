// Helpers shared by the pinring benchmark binaries: CPU pinning, per-iteration latency recording
// (p50/p99/p99.9 exported as Google Benchmark counters), and the size cap that quick mode and
// emulated guests use. Header-only: each benchmark binary is one .cc file plus this.
#pragma once

#include <benchmark/benchmark.h>
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace pinring::bench {

// The two CPUs ping-pong benchmarks use: the measuring side on kCpuA, the echoing side on kCpuB.
// This machine has exactly two cores; on a bigger one these are still the first two.
inline constexpr int kCpuA = 0;
inline constexpr int kCpuB = 1;

// Pins the calling thread to `cpu`. Returns false (and leaves the mask alone) when the CPU does
// not exist or the call is refused; benchmarks still run, unpinned, and say so in a label.
inline bool PinToCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

// Restores the calling thread's affinity mask when it goes out of scope, so one benchmark's
// pinning does not leak into the next one's.
class ScopedAffinity {
 public:
  ScopedAffinity() { ok_ = sched_getaffinity(0, sizeof saved_, &saved_) == 0; }
  ~ScopedAffinity() {
    if (ok_) sched_setaffinity(0, sizeof saved_, &saved_);
  }
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;

 private:
  cpu_set_t saved_{};
  bool ok_ = false;
};

// TSC ticks per nanosecond, measured once against the monotonic clock (about 20 ms). The TSC is
// used for per-iteration timing because reading it costs a few ns, where clock_gettime through
// kvm-clock costs tens; on machines without an invariant TSC the numbers would drift, so the
// calibration is repeated per process and printed in the benchmark context.
inline double TicksPerNs() {
  static const double kTicksPerNs = [] {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    const std::uint64_t c0 = __rdtsc();
    while (Clock::now() - t0 < std::chrono::milliseconds(20)) {
    }
    const auto t1 = Clock::now();
    const std::uint64_t c1 = __rdtsc();
    const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
    return static_cast<double>(c1 - c0) / ns;
  }();
  return kTicksPerNs;
}

inline std::uint64_t Ticks() { return __rdtsc(); }

// Collects one duration per iteration and reports percentiles as counters (nanoseconds):
//   p50_ns, p99_ns, p999_ns, max_ns. Google Benchmark's own real_time column stays the mean.
class LatencyRecorder {
 public:
  explicit LatencyRecorder(const benchmark::State& state) {
    samples_.reserve(static_cast<std::size_t>(state.max_iterations));
  }
  void Add(std::uint64_t ticks) { samples_.push_back(ticks); }

  void Report(benchmark::State& state) {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    const double per_ns = 1.0 / TicksPerNs();
    auto at = [&](double q) {
      std::size_t i = static_cast<std::size_t>(q * static_cast<double>(samples_.size() - 1));
      return static_cast<double>(samples_[i]) * per_ns;
    };
    state.counters["p50_ns"] = at(0.50);
    state.counters["p99_ns"] = at(0.99);
    state.counters["p999_ns"] = at(0.999);
    state.counters["max_ns"] = static_cast<double>(samples_.back()) * per_ns;
    state.counters["samples"] = static_cast<double>(samples_.size());
  }

 private:
  std::vector<std::uint64_t> samples_;
};

// Flags every pinring benchmark binary understands besides Google Benchmark's own. They are
// removed from argv before benchmark::Initialize sees them.
//   --pinring_max_bytes=N   largest size a size sweep registers (quick mode, emulated guests)
//   --pinring_quick         quick mode: the smallest sweeps, to prove the binary works
// The victim/aggressor rows (victim.h):
//   --pinring_victim_samples=N   most victim round trips per phase (alone, with the aggressor)
//   --pinring_victim_interval_us=U  pace the victim: one round trip starts every U us (or at
//                                once if the last took longer); 0 (default): back to back
//   --pinring_victim_seconds=S   time cap per phase (a starved victim may take seconds per trip)
//   --pinring_aggressor_bytes=N  length of each aggressor COPY / CHECKSUM, and of its 2 regions
// The rdma transport rows (pinring-bench-rdma):
//   --pinring_rdma_poll_us=U     start ringd with --rdma_poll_us=U (default: ringd's own default)
struct Options {
  std::uint64_t max_bytes = 1ull << 30;
  bool quick = false;
  std::uint64_t victim_samples = 20000;
  std::uint64_t victim_interval_us = 0;
  double victim_seconds = 5;
  std::uint64_t aggressor_bytes = 64ull << 20;
  std::string rdma_poll_us;  // empty: not passed to ringd
};

inline Options ParseOptions(int* argc, char** argv) {
  Options o;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    std::string_view a = argv[i];
    if (a.starts_with("--pinring_max_bytes=")) {
      o.max_bytes = std::strtoull(argv[i] + std::strlen("--pinring_max_bytes="), nullptr, 0);
    } else if (a == "--pinring_quick") {
      o.quick = true;
    } else if (a.starts_with("--pinring_victim_samples=")) {
      o.victim_samples =
          std::strtoull(argv[i] + std::strlen("--pinring_victim_samples="), nullptr, 0);
    } else if (a.starts_with("--pinring_victim_interval_us=")) {
      o.victim_interval_us =
          std::strtoull(argv[i] + std::strlen("--pinring_victim_interval_us="), nullptr, 0);
    } else if (a.starts_with("--pinring_victim_seconds=")) {
      o.victim_seconds = std::strtod(argv[i] + std::strlen("--pinring_victim_seconds="), nullptr);
    } else if (a.starts_with("--pinring_rdma_poll_us=")) {
      o.rdma_poll_us = argv[i] + std::strlen("--pinring_rdma_poll_us=");
    } else if (a.starts_with("--pinring_aggressor_bytes=")) {
      o.aggressor_bytes =
          std::strtoull(argv[i] + std::strlen("--pinring_aggressor_bytes="), nullptr, 0);
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  argv[out] = nullptr;
  return o;
}

// Human-readable size for benchmark names: 4KiB, 2MiB, 1GiB, 64B.
inline std::string SizeName(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (u < 3 && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++u;
  }
  return std::to_string(bytes) + units[u];
}

// Standard main body: parse our flags, add context, run, return.
template <typename RegisterFn>
int RunMain(int argc, char** argv, RegisterFn register_fn) {
  Options o = ParseOptions(&argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("tsc_ticks_per_ns", std::to_string(TicksPerNs()));
  benchmark::AddCustomContext("pinring_max_bytes", std::to_string(o.max_bytes));
  benchmark::AddCustomContext("pinring_quick", o.quick ? "1" : "0");
  register_fn(o);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace pinring::bench
