// pinring-forkcheck: what fork() does to pinned memory under each fork-safety mode, on this kernel.
// Runs scenario x mode x pin backend, prints a table (progress per cell on stderr), writes JSON.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "matrix.h"
#include "pin_backend.h"
#include "verbs/private_region.h"
#include "tools/common/cli_help.h"
#include "verdict.h"

ABSL_FLAG(std::string, json, "", "write the results as JSON to this path");
ABSL_FLAG(bool, quick, false, "a few seconds: small buffers, sizes 1..16 MiB, fewer repetitions");
ABSL_FLAG(std::string, backends, "all", "comma list of pin backends: verbs,iouring,gup_test");
ABSL_FLAG(std::string, modes, "all",
          "comma list of fork modes: kernel,dontfork,readonly,write-for-read,shared");
ABSL_FLAG(std::string, scenarios, "all",
          "comma list of scenarios (see the table's first column), or all");
ABSL_FLAG(bool, costs, true, "measure fork() latency / child RSS / VMAs / registration time");
ABSL_FLAG(int, max_size_mib, 1024, "largest registered size for the cost sweep (MiB)");
ABSL_FLAG(int, reps, 0, "forks per cost point (median taken); 0 = 7, or 3 with --quick");
ABSL_FLAG(std::string, cost_backend, "",
          "backend for the cost sweep (default: the first available of verbs, iouring)");
ABSL_FLAG(std::string, require_backend, "",
          "exit 77 (skip) with a reason if this backend is unavailable; with "
          "PINRING_REQUIRE_DEVICE=1 exit 1 instead");
ABSL_FLAG(std::string, label, "", "free text stored in the JSON (e.g. host, guest)");
ABSL_FLAG(std::string, file_dir, "/var/tmp",
          "a directory on a disk filesystem (ext4, xfs, btrfs) for the file-shared-disk and "
          "file-private-pwrite scenarios; on another filesystem they are skipped with the reason");
ABSL_FLAG(std::string, tmpfs_dir, "/dev/shm", "a directory on tmpfs for file-shared-tmpfs");
ABSL_FLAG(std::string, cost_point, "",
          "internal: BACKEND,MODE,BYTES,REPS: measure one cost point in this (fresh, small) "
          "process and print it as one JSON line; the cost sweep runs every point this way");

namespace pf = pinring::forkcheck;
using pinring::ForkMode;

namespace {

std::string S(std::string_view v) { return std::string(v); }

bool Contains(const std::vector<std::string>& v, std::string_view s) {
  if (v.empty()) return true;
  for (const auto& x : v) {
    if (x == s) return true;
  }
  return false;
}

nlohmann::json PointJson(const pf::CostPoint& pt) {
  return {{"bytes", pt.bytes},
          {"fork_median_us", pt.fork_median_us},
          {"fork_samples_us", pt.fork_samples_us},
          {"register_ms", pt.register_ms},
          {"child_rss_kib", pt.child_rss_kib},
          {"child_private_kib", pt.child_private_kib},
          {"vmas_before", pt.vmas_before},
          {"vmas_after", pt.vmas_after},
          {"error", pt.error}};
}

// One cost point measured in a helper: this executable re-run with --cost_point, so the fork()
// being timed copies the page tables of a small process holding just the registration, not the
// evaluator's own address space (its heap, its threads' stacks, the matrix's leftovers).
pf::CostPoint PointInHelper(const std::string& backend, const std::string& mode,
                            std::size_t bytes, int reps) {
  pf::CostPoint pt;
  pt.bytes = bytes;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    pt.error = absl::StrCat("pipe: ", std::strerror(errno));
    return pt;
  }
  const std::string arg = absl::StrCat("--cost_point=", backend, ",", mode, ",", bytes, ",", reps);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the new descriptor
    char exe[] = "/proc/self/exe";
    char* argv[] = {exe, const_cast<char*>(arg.c_str()), nullptr};
    execv(exe, argv);
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  close(out[0]);
  int ws = 0;
  if (pid < 0 || waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
    pt.error = absl::StrCat("cost helper failed (", pid < 0 ? std::strerror(errno) : "exit status ",
                            WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws), ")");
    return pt;
  }
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    pt.error = "cost helper printed no JSON";
    return pt;
  }
  pt.fork_median_us = j.value("fork_median_us", 0.0);
  pt.fork_samples_us = j.value("fork_samples_us", std::vector<double>{});
  pt.register_ms = j.value("register_ms", 0.0);
  pt.child_rss_kib = j.value("child_rss_kib", std::int64_t{-1});
  pt.child_private_kib = j.value("child_private_kib", std::int64_t{-1});
  pt.vmas_before = j.value("vmas_before", 0);
  pt.vmas_after = j.value("vmas_after", 0);
  pt.error = j.value("error", std::string());
  return pt;
}

// --cost_point: the helper's side.
int RunCostPoint(const std::string& spec) {
  const std::vector<std::string> f = pf::SplitList(spec);
  if (f.size() != 4) {
    std::cerr << "--cost_point wants BACKEND,MODE,BYTES,REPS\n";
    return 2;
  }
  auto backend = pf::MakeBackend(f[0]);
  if (backend == nullptr || !backend->unavailable_reason().empty()) {
    pf::CostPoint pt;
    pt.error = backend == nullptr ? "unknown backend" : backend->unavailable_reason();
    std::cout << PointJson(pt).dump() << "\n";
    return 0;
  }
  const std::size_t bytes = std::strtoull(f[2].c_str(), nullptr, 10);
  pf::CostSeries cs = pf::RunCosts(*backend, f[1], {bytes}, std::atoi(f[3].c_str()));
  std::cout << PointJson(cs.points.at(0)).dump() << "\n";
  return 0;
}

std::string Mark(const pf::CellResult& c) {
  std::string s(pf::OutcomeName(c.outcome));
  if (c.judgement.mismatch) {
    s += "!";
  } else if (c.outcome != pf::Outcome::kCoherent && c.outcome != pf::Outcome::kSkipped) {
    s += "*";
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  static const char kUsage[] =
      "pinring-forkcheck: runs scenario x fork-mode x pin-backend on the running kernel and "
      "reports what a device reading pinned memory sees around fork().\n"
      "Usage: pinring-forkcheck [--quick] [--json=PATH] [--backends=iouring,verbs] "
      "[--modes=...] [--scenarios=...] [--max_size_mib=N] [--nocosts]\n"
      "Outcomes: coherent | stale (device sees old data) | leak (device sees the child's data) | "
      "child-signal | refused (the kernel rejects the registration: errno) | pin-failed (the environment) | device-fault (registered, but the device's access failed) | skipped. '!' marks a result that differs from what the mode "
      "is expected to guarantee, '*' an expected non-coherent result. Exit: 0 ran (mismatches "
      "are reported, not failures); 1 error; 2 usage; 3 a cell was unknown (tool bug); 77 "
      "--require_backend unavailable.";
  pinring::cli::HandleHelp(argc, argv, kUsage, {"tools/forkcheck/"});  // stdout, exit 0
  absl::SetProgramUsageMessage(kUsage);
  absl::ParseCommandLine(argc, argv);
  const bool quick = absl::GetFlag(FLAGS_quick);

  // Pinning is charged to RLIMIT_MEMLOCK; raise it if we may (root), so 1 GiB points can pin.
  rlimit rl{RLIM_INFINITY, RLIM_INFINITY};
  (void)setrlimit(RLIMIT_MEMLOCK, &rl);
  if (const std::string cp = absl::GetFlag(FLAGS_cost_point); !cp.empty()) return RunCostPoint(cp);

  const auto want_backends = pf::SplitList(absl::GetFlag(FLAGS_backends));
  const auto want_modes = pf::SplitList(absl::GetFlag(FLAGS_modes));
  const auto want_scen = pf::SplitList(absl::GetFlag(FLAGS_scenarios));
  for (const auto& b : want_backends) {
    if (b != "verbs" && b != "iouring" && b != "gup_test") {
      std::cerr << "unknown backend '" << b << "' (verbs, iouring, gup_test)\n";
      return 2;
    }
  }
  std::vector<ForkMode> modes;
  for (ForkMode m : pinring::kAllForkModes) {
    if (Contains(want_modes, pinring::ForkModeName(m))) modes.push_back(m);
  }
  for (const auto& m : want_modes) {
    if (!pinring::ParseForkMode(m)) {
      std::cerr << "unknown mode '" << m << "'\n";
      return 2;
    }
  }
  std::vector<pf::Scenario> scenarios;
  for (pf::Scenario s : pf::kAllScenarios) {
    if (Contains(want_scen, pf::ScenarioName(s))) scenarios.push_back(s);
  }
  for (const auto& s : want_scen) {
    if (!pf::ParseScenario(s)) {
      std::cerr << "unknown scenario '" << s << "'\n";
      return 2;
    }
  }

  const pinring::KernelForkReport kr = pinring::GetKernelForkReport();
  pf::KernelFacts facts;
  facts.release = kr.release;
  facts.copy_on_fork = kr.version_has_copy_on_fork;
  facts.reliable_readonly_pins = kr.version_has_reliable_readonly_pins;

  std::vector<std::unique_ptr<pf::PinBackend>> backends;
  for (const char* name : pf::kBackendNames) {
    if (Contains(want_backends, name)) backends.push_back(pf::MakeBackend(name));
  }
  if (const std::string req = absl::GetFlag(FLAGS_require_backend); !req.empty()) {
    std::string why = "not selected with --backends";
    for (const auto& b : backends) {
      if (b->name() == req) why = b->unavailable_reason();
    }
    if (!why.empty()) {
      const char* rd = std::getenv("PINRING_REQUIRE_DEVICE");
      const bool required = rd != nullptr && std::strcmp(rd, "1") == 0;
      std::cerr << "pinring-forkcheck: backend " << req << " unavailable: " << why << "\n";
      if (required) {
        std::cerr << "PINRING_REQUIRE_DEVICE=1: failing\n";
        return 1;
      }
      std::cerr << "skipping (exit 77); run inside deploy/softroce/pinring-rxe for a device\n";
      return 77;
    }
  }

  std::cout << "pinring-forkcheck on Linux " << kr.release << "\n";
  std::cout << "  copy-on-fork (rdma netlink RDMA_NLDEV_SYS_ATTR_COPY_ON_FORK): "
            << (kr.netlink_copy_on_fork ? (*kr.netlink_copy_on_fork ? "on" : "off")
                                        : "unavailable: " + kr.netlink_note)
            << "\n  libibverbs ibv_is_fork_initialized() == IBV_FORK_UNNEEDED: "
            << (kr.ibv_fork_unneeded ? "yes" : "no")
            << "\n  by version: copy-on-fork of pinned pages (>= 5.9): "
            << (facts.copy_on_fork ? "yes" : "no")
            << "; reliable read-only long-term pins (>= 6.2): "
            << (facts.reliable_readonly_pins ? "yes" : "no") << "\n";
  for (const auto& b : backends) {
    std::cout << "  backend " << b->name() << ": "
              << (b->unavailable_reason().empty() ? "available" : b->unavailable_reason()) << "\n";
  }

  pf::RunOptions opts;
  opts.file_dir = absl::GetFlag(FLAGS_file_dir);
  opts.tmpfs_dir = absl::GetFlag(FLAGS_tmpfs_dir);
  if (quick) {
    opts.buffer_bytes = 64 << 10;
    opts.concurrent_forks = 5;
  }
  std::vector<pf::CellResult> cells;
  const std::size_t total = backends.size() * scenarios.size() * modes.size();
  std::size_t idx = 0;
  for (const auto& b : backends) {
    for (pf::Scenario s : scenarios) {
      for (ForkMode m : modes) {
        ++idx;
        pf::CellResult c = pf::RunCell(*b, s, m, facts, opts);
        std::cerr << absl::StrFormat("[%3d/%d] %-8s %-26s %-14s %-13s %7.1f ms%s\n", idx, total,
                                     b->name(), S(pf::ScenarioName(s)), S(pinring::ForkModeName(m)),
                                     Mark(c), c.millis, c.judgement.mismatch ? "  MISMATCH" : "");
        cells.push_back(std::move(c));
      }
    }
  }

  // The table: one block per backend, scenarios down, modes across.
  for (const auto& b : backends) {
    std::cout << "\nbackend " << b->name() << "\n";
    std::cout << absl::StrFormat("  %-26s", "scenario");
    for (ForkMode m : modes) std::cout << absl::StrFormat(" %-15s", S(pinring::ForkModeName(m)));
    std::cout << "\n";
    for (pf::Scenario s : scenarios) {
      std::cout << absl::StrFormat("  %-26s", S(pf::ScenarioName(s)));
      for (ForkMode m : modes) {
        for (const auto& c : cells) {
          if (c.backend == b->name() && c.scenario == s && c.mode == m) {
            std::cout << absl::StrFormat(" %-15s", Mark(c));
          }
        }
      }
      std::cout << "\n";
    }
  }
  std::cout << "\n  ! = differs from what the mode is expected to guarantee; * = expected "
               "non-coherent result (by design or an application error)\n";

  // Every non-plain result explained; identical skip reasons grouped.
  std::cout << "\nNotes:\n";
  std::map<std::string, std::vector<std::string>> skips;
  for (const auto& c : cells) {
    const std::string where = absl::StrCat(c.backend, "/", S(pf::ScenarioName(c.scenario)), "/",
                                           S(pinring::ForkModeName(c.mode)));
    if (c.outcome == pf::Outcome::kSkipped) {
      skips[c.judgement.explanation].push_back(where);
    } else if (!c.judgement.explanation.empty()) {
      std::cout << "  " << (c.judgement.mismatch ? "MISMATCH " : "") << where << ": "
                << pf::OutcomeName(c.outcome) << " [" << pf::BlameName(c.judgement.blame) << "] "
                << c.judgement.explanation << " (" << c.detail << ")\n";
    }
  }
  for (const auto& [reason, where] : skips) {
    std::cout << "  skipped (" << where.size() << " cells, e.g. " << where.front()
              << "): " << reason << "\n";
  }

  // Costs.
  std::vector<pf::CostSeries> costs;
  if (absl::GetFlag(FLAGS_costs)) {
    pf::PinBackend* cb = nullptr;
    const std::string want_cb = absl::GetFlag(FLAGS_cost_backend);
    for (const auto& b : backends) {
      if (!b->unavailable_reason().empty()) continue;
      if (!want_cb.empty() ? b->name() == want_cb : b->name() != "gup_test") {
        cb = b.get();
        break;
      }
    }
    if (cb == nullptr) {
      std::cout << "\nCosts: skipped (no available backend among the selected ones)\n";
    } else {
      std::vector<std::size_t> sizes;
      const std::size_t max_mib = static_cast<std::size_t>(absl::GetFlag(FLAGS_max_size_mib));
      for (std::size_t mib = 1; mib <= (quick ? std::min<std::size_t>(16, max_mib) : max_mib);
           mib *= 4) {
        sizes.push_back(mib << 20);
      }
      int reps = absl::GetFlag(FLAGS_reps);
      if (reps <= 0) reps = quick ? 3 : 7;
      // "floor": the helper's own fork() with nothing mapped or registered, the least a cost
      // point can show; "unpinned": the same touched memory as each point, no registration.
      {
        pf::CostSeries floor;
        floor.backend = cb->name();
        floor.mode = "floor";
        floor.points.push_back(PointInHelper(cb->name(), "floor", 0, reps));
        std::cout << absl::StrFormat("  floor (a helper with nothing registered): fork %.1f us%s\n",
                                     floor.points[0].fork_median_us,
                                     floor.points[0].error.empty()
                                         ? ""
                                         : "  error: " + floor.points[0].error);
        costs.push_back(std::move(floor));
      }
      std::vector<std::string> names = {"unpinned"};
      for (ForkMode m : modes) {
        if (cb->unsupported_mode_reason(m).empty()) names.emplace_back(pinring::ForkModeName(m));
      }
      std::cout << "\nCosts (backend " << cb->name() << ", median of " << reps
                << " forks; child RSS = RssAnon+RssShmem right after fork;\n   child_copied = the "
                   "child's "
                   "Private_* in smaps_rollup = pages fork() copied; VMAs+ = /proc/self/maps lines "
                   "added by mapping+pinning, incl. the backend's own mappings):\n";
      std::cout << absl::StrFormat("  %-15s %9s %12s %12s %14s %16s %6s\n", "mode", "size",
                                   "fork_us", "register_ms", "child_rss_KiB", "child_copied_KiB",
                                   "VMAs+");
      for (const auto& name : names) {
        std::cerr << "costs: " << cb->name() << " " << name << " ...\n";
        pf::CostSeries cs;
        cs.backend = cb->name();
        cs.mode = name;
        for (std::size_t bytes : sizes) cs.points.push_back(PointInHelper(cb->name(), name, bytes, reps));
        for (const auto& pt : cs.points) {
          if (!pt.error.empty()) {
            std::cout << absl::StrFormat("  %-15s %7zuMi  error: %s\n", name, pt.bytes >> 20,
                                         pt.error);
            continue;
          }
          std::cout << absl::StrFormat("  %-15s %7zuMi %12.1f %12.2f %14d %16d %+6d\n", name,
                                       pt.bytes >> 20, pt.fork_median_us, pt.register_ms,
                                       pt.child_rss_kib, pt.child_private_kib,
                                       pt.vmas_after - pt.vmas_before);
        }
        costs.push_back(std::move(cs));
      }
      if (ForkMode ro = ForkMode::kReadOnly; Contains(want_modes, pinring::ForkModeName(ro)) &&
                                             !cb->unsupported_mode_reason(ro).empty()) {
        std::cout << "  readonly: not measured: " << cb->unsupported_mode_reason(ro) << "\n";
      }
    }
  }

  // JSON.
  int unknown = 0, mismatches = 0;
  nlohmann::json j;
  j["tool"] = "pinring-forkcheck";
  j["label"] = absl::GetFlag(FLAGS_label);
  j["quick"] = quick;
  utsname u{};
  uname(&u);
  j["kernel"] = {
      {"release", kr.release},
      {"version", u.version},
      {"machine", u.machine},
      {"ibv_fork_unneeded", kr.ibv_fork_unneeded},
      {"netlink_copy_on_fork", kr.netlink_copy_on_fork ? nlohmann::json(*kr.netlink_copy_on_fork)
                                                       : nlohmann::json(nullptr)},
      {"netlink_note", kr.netlink_note},
      {"version_has_copy_on_fork", facts.copy_on_fork},
      {"version_has_reliable_readonly_pins", facts.reliable_readonly_pins},
      {"in_guest", std::getenv("PINRING_IN_GUEST") != nullptr}};
  for (const auto& b : backends) {
    j["backends"][b->name()] =
        b->unavailable_reason().empty() ? "available" : b->unavailable_reason();
  }
  j["buffer_bytes"] = opts.buffer_bytes;
  for (pf::Scenario s : scenarios) {
    j["scenarios"].push_back(
        {{"name", pf::ScenarioName(s)}, {"description", pf::ScenarioDescription(s)}});
  }
  for (ForkMode m : modes) j["modes"].push_back(pinring::ForkModeName(m));
  j["cells"] = nlohmann::json::array();
  for (const auto& c : cells) {
    if (c.outcome == pf::Outcome::kUnknown) ++unknown;
    if (c.judgement.mismatch) ++mismatches;
    j["cells"].push_back({{"backend", c.backend},
                          {"scenario", pf::ScenarioName(c.scenario)},
                          {"mode", pinring::ForkModeName(c.mode)},
                          {"outcome", pf::OutcomeName(c.outcome)},
                          {"expected", pf::OutcomeName(c.judgement.expected.outcome)},
                          {"guarantee", c.judgement.expected.guarantee},
                          {"mismatch", c.judgement.mismatch},
                          {"blame", pf::BlameName(c.judgement.blame)},
                          {"explanation", c.judgement.explanation},
                          {"detail", c.detail},
                          {"child_signal", c.obs.child_signal},
                          {"pin_errno", c.obs.pin_errno},
                          {"skip_reason", c.obs.skip_reason},
                          {"millis", c.millis}});
  }
  j["costs"] = nlohmann::json::array();
  for (const auto& cs : costs) {
    nlohmann::json pts = nlohmann::json::array();
    for (const auto& pt : cs.points) pts.push_back(PointJson(pt));
    j["costs"].push_back({{"backend", cs.backend}, {"mode", cs.mode}, {"points", pts}});
  }
  j["summary"] = {{"cells", cells.size()}, {"unknown", unknown}, {"mismatches", mismatches}};
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    std::ofstream out(path);
    out << j.dump(2) << "\n";
    if (!out) {
      std::cerr << "cannot write " << path << "\n";
      return 1;
    }
  }
  std::cout << "\n"
            << cells.size() << " cells, " << mismatches << " mismatches, " << unknown
            << " unknown\n";
  return unknown > 0 ? 3 : 0;
}
