// Running the evaluator's cells (scenario x mode x backend) and cost measurements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pin_backend.h"
#include "pinring/fork_mode.h"
#include "verdict.h"

namespace pinring::forkcheck {

struct RunOptions {
  std::size_t buffer_bytes = 256 << 10;  // correctness scenarios (huge-page ones use 4 MiB)
  int concurrent_forks = 20;             // forks in the concurrent-writer scenario
  std::string file_dir;                  // a directory on a disk filesystem (file-* scenarios)
  std::string tmpfs_dir = "/dev/shm";    // a directory on tmpfs (file-shared-tmpfs)
};

struct CellResult {
  std::string backend;
  Scenario scenario{};
  ForkMode mode{};
  Outcome outcome = Outcome::kUnknown;
  Observation obs;
  Judgement judgement;
  std::string detail;  // byte counts, errors, backing facts
  double millis = 0;
};

// Runs one cell. Never throws; every failure becomes pin-failed or skipped with a reason.
CellResult RunCell(PinBackend& backend, Scenario s, ForkMode m, const KernelFacts& k,
                   const RunOptions& opts);

struct CostPoint {
  std::size_t bytes = 0;
  double fork_median_us = 0;  // median fork() latency in the parent
  std::vector<double> fork_samples_us;
  double register_ms = 0;           // ApplyForkSafety + registration
  std::int64_t child_rss_kib = -1;  // child's RssAnon + RssShmem right after fork
  // Child's Private_Clean + Private_Dirty (smaps_rollup) right after fork: pages the child maps
  // exclusively, i.e. what fork() had to COPY (COW-shared pages count as Shared_*).
  std::int64_t child_private_kib = -1;
  int vmas_before = 0, vmas_after = 0;  // /proc/self/maps lines before mapping / after pinning
  std::string error;                    // non-empty: this point could not be measured
};
struct CostSeries {
  std::string backend;
  std::string mode;  // a fork mode name, "unpinned" (same memory, no pin) or "floor" (nothing)
  std::vector<CostPoint> points;
};

// Measures fork() cost for `mode` at each size (`mode_name` "unpinned" = the same touched
// memory, no registration; "floor" = nothing mapped at all, sizes ignored). pinring-forkcheck
// runs each point in a fresh helper process (--cost_point), so the fork() timed is that of a
// process holding little more than the registration.
CostSeries RunCosts(PinBackend& backend, const std::string& mode_name,
                    const std::vector<std::size_t>& sizes, int reps);
// `reps` forks of the calling process: fork_samples_us, fork_median_us, and the first child's
// RSS and copied pages, into *out (which keeps its other fields).
void MeasureForks(int reps, CostPoint* out);

int CountMapsLines();

}  // namespace pinring::forkcheck
