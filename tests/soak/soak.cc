// pinring-soak: a hostile-tenant soak against a real ringd.
//
// Honest clients (threads, each its own connection) do verified work the whole time: every FILL,
// COPY and CHECKSUM result is checked against the data. Hostile clients (forked processes, one per
// round) cycle through classes of attack. ringd is restarted now and then with SIGTERM or
// SIGKILL; the honest clients reconnect and register again. After every round:
//   - ringd is alive and answers a StatsRequest within --answer_ms;
//   - no honest client saw wrong data;
//   - ringd's fd count and registered bytes are back to the baseline (the honest clients' own), and
//     its RSS within --rss_slack_mib of it; with --backend=verbs also `rdma res show mr`.
// A ringd that exits without being asked to is a crash: the soak fails.
//
//   pinring-soak --rounds=40 --restarts=4            the quick mode (scripts/test.sh)
//   pinring-soak --rounds=1000 --restarts=100        the long mode (docs/reliability.md)
//
// The last line is "soak: N passed, M failed" (rounds).
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/ringd_process.h"
#include "service/raw_client.h"

ABSL_FLAG(int, honest, 3, "Honest clients (threads doing verified work)");
ABSL_FLAG(int, rounds, 40, "Hostile rounds (one attack each, in a forked process)");
ABSL_FLAG(int, restarts, 4, "ringd restarts spread over the rounds (SIGTERM and SIGKILL alternately)");
ABSL_FLAG(std::string, backend, "cpu", "ringd --backend");
ABSL_FLAG(int, answer_ms, 5000, "Bound on ringd's answer to a StatsRequest after each round");
ABSL_FLAG(int, rss_slack_mib, 64, "RSS growth over the baseline still counted as no leak");
ABSL_FLAG(int, round_ms, 300, "How long each attack runs");

namespace pinring::testing {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<std::uint64_t> g_verified{0};
std::atomic<std::uint64_t> g_wrong{0};
std::atomic<std::uint64_t> g_reconnects{0};
std::mutex g_log_mu;
std::string g_first_wrong;

void Wrong(const std::string& what) {
  g_wrong.fetch_add(1);
  std::lock_guard<std::mutex> l(g_log_mu);
  if (g_first_wrong.empty()) g_first_wrong = what;
}

// --- honest clients ------------------------------------------------------------------------------
// Returns when the connection fails (ringd restarted or went away) or g_stop.
void HonestSession(const std::string& path, int id, std::atomic<bool>& ready) {
  auto c = RawClient::Connect(path);
  if (!c.ok() || !(*c)->Hello(absl::StrCat("honest-", id)).ok()) return;
  constexpr std::size_t kSize = 256 * 1024;
  auto src = TestRegion::Make(kSize);
  auto dst = TestRegion::Make(kSize);
  TestQueue::Options o;
  o.doorbell = id % 2 == 0 ? wire::DoorbellMode::kBusyPoll : wire::DoorbellMode::kEventfd;
  o.wait = id % 2 == 0 ? wire::CompletionWait::kSpin : wire::CompletionWait::kBlock;
  auto q = TestQueue::Make(o);
  if (!src.ok() || !dst.ok() || !q.ok()) return Wrong("honest client could not make memfds");
  if (!(*src)->Register(**c).ok() || !(*dst)->Register(**c).ok() || !(*q)->Create(**c).ok()) return;
  ready.store(true);
  std::mt19937_64 g(static_cast<std::uint64_t>(id) * 7919 + g_reconnects.load());
  const std::uint32_t s = (*src)->handle, d = (*dst)->handle;
  while (!g_stop.load()) {
    const std::uint8_t v = static_cast<std::uint8_t>(g());
    const std::uint64_t off = (g() % (kSize / 8)) * 4;
    const std::uint64_t len = 1 + g() % (kSize - off - 1);
    const Descriptor ds[] = {FillDesc(1, s, 0, kSize, v), CopyDesc(2, s, off, d, off, len),
                             ChecksumDesc(3, d, off, len)};
    if (!(*q)->Submit(ds)) return;
    auto done = (*q)->Reap(3, absl::Seconds(20));
    if (!done.ok()) return;  // restart or queue error: reconnect
    std::vector<std::byte> expect(len, std::byte{v});
    for (const Completion& cpl : *done) {
      // ringd stopping (a restart): answered, not executed. Reconnect.
      if (cpl.status == static_cast<int>(CompletionStatus::kShuttingDown)) return;
    }
    if ((*done)[0].status != 0 || (*done)[1].status != 0 || (*done)[2].status != 0) {
      return Wrong(absl::StrCat("honest client ", id, ": statuses ", (*done)[0].status, "/",
                                (*done)[1].status, "/", (*done)[2].status));
    }
    if ((*done)[2].result != Fnv1a64(expect) ||
        std::memcmp((*dst)->data + off, expect.data(), len) != 0) {
      return Wrong(absl::StrCat("honest client ", id, ": wrong data after COPY/CHECKSUM"));
    }
    g_verified.fetch_add(3);
  }
}

void Honest(const std::string& path, int id, std::atomic<bool>& ready) {
  while (!g_stop.load()) {
    HonestSession(path, id, ready);
    ready.store(false);
    if (g_stop.load()) return;
    g_reconnects.fetch_add(1);
    absl::SleepFor(absl::Milliseconds(50));
  }
}

// --- hostile clients: each runs in a forked child, for round_ms -----------------------------------
using Attack = void (*)(const std::string& path, absl::Time end);

std::unique_ptr<RawClient> Hostile(const std::string& path) {
  auto c = RawClient::Connect(path);
  if (!c.ok()) return nullptr;
  (void)(*c)->Hello("hostile");
  return std::move(*c);
}

void ScribbleIndices(const std::string& path, absl::Time end) {
  auto c = Hostile(path);
  auto q = TestQueue::Make({});
  if (c == nullptr || !q.ok() || !(*q)->Create(*c).ok()) return;
  std::mt19937 g(1);
  while (absl::Now() < end) {
    (*q)->hdr->sq_tail.value.store(g() % 3 == 0 ? g() : (*q)->hdr->sq_tail.value.load() + g() % 4);
    (*q)->hdr->cq_head.value.store(g() % 3 == 0 ? g() : (*q)->hdr->cq_tail.value.load());
    (*q)->hdr->cq_flags.value.store(g());
  }
}

void RewriteDescriptors(const std::string& path, absl::Time end) {
  auto c = Hostile(path);
  auto q = TestQueue::Make({});
  auto r = TestRegion::Make(64 * 1024);
  if (c == nullptr || !q.ok() || !r.ok() || !(*r)->Register(*c).ok() || !(*q)->Create(*c).ok()) return;
  std::atomic<bool> done{false};
  auto* sq = reinterpret_cast<Descriptor*>(static_cast<std::byte*>((*q)->map) + (*q)->layout.sq_offset);
  std::thread rewriter([&] {
    std::mt19937_64 g(2);
    while (!done.load()) {
      Descriptor& d = sq[g() % (*q)->opts.sq_entries];
      d.opcode = static_cast<std::uint8_t>(g() % 5);
      d.length = g();
      d.src_region = static_cast<std::uint32_t>(g() % 3);
      d.dst_offset = g();
    }
  });
  while (absl::Now() < end) {
    (*q)->Submit(CopyDesc(1, (*r)->handle, 0, (*r)->handle, 32768, 1024));
    (void)(*q)->Reap(1, absl::Milliseconds(20));
  }
  done.store(true);
  rewriter.join();
}

void BadMemfds(const std::string& path, absl::Time end) {
  auto c = Hostile(path);
  if (c == nullptr) return;
  while (absl::Now() < end) {
    auto unsealed = TestRegion::Make(8192, /*seal=*/false);
    if (unsealed.ok()) (void)(*unsealed)->RegisterRaw(*c, ForkMode::kShared);
    auto small = TestRegion::Make(4096);
    if (small.ok()) (void)(*small)->RegisterRaw(*c, ForkMode::kShared, 1 << 20);
    // A region whose memory is then punched out (shmem: ringd faults fresh pages in).
    auto holed = TestRegion::Make(64 * 1024);
    auto q = TestQueue::Make({});
    if (!holed.ok() || !q.ok() || !(*holed)->Register(*c).ok() || !(*q)->Create(*c).ok()) return;
    fallocate((*holed)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 64 * 1024);
    (*q)->Submit(FillDesc(1, (*holed)->handle, 0, 64 * 1024, 7));
    (void)(*q)->Reap(1, absl::Milliseconds(200));
    // A closed fd number and a queue memfd of the wrong size.
    const int closed = dup(0);
    close(closed);
    const int fds[1] = {closed};
    wire::RegisterRegion m{};
    m.size = 4096;
    (void)c->Send(MessageType::kRegisterRegion, m, fds);
    TestQueue::Options o;
    o.size_delta = -4096;
    auto bad = TestQueue::Make(o);
    if (bad.ok()) (void)(*bad)->CreateRaw(*c);
    c = Hostile(path);  // the closed-fd message may have cost the connection
    if (c == nullptr) return;
  }
}

void NeverReap(const std::string& path, absl::Time end) {
  auto c = Hostile(path);
  TestQueue::Options o;
  o.doorbell = wire::DoorbellMode::kEventfd;
  auto q = TestQueue::Make(o);
  if (c == nullptr || !q.ok() || !(*q)->Create(*c).ok()) return;
  while (absl::Now() < end) {
    if (!(*q)->Submit(Descriptor{})) absl::SleepFor(absl::Milliseconds(1));
  }
}

void DoorbellStorm(const std::string& path, absl::Time end) {
  auto c = Hostile(path);
  TestQueue::Options o;
  o.doorbell = wire::DoorbellMode::kEventfd;
  auto q = TestQueue::Make(o);
  if (c == nullptr || !q.ok() || !(*q)->Create(*c).ok()) return;
  const std::uint64_t one = 1;
  while (absl::Now() < end) (void)!write((*q)->doorbell, &one, sizeof one);
}

void SaturatedEventfd(const std::string& path, absl::Time end) {
  auto c = Hostile(path);
  TestQueue::Options o;
  o.doorbell = wire::DoorbellMode::kEventfd;
  o.wait = wire::CompletionWait::kBlock;
  auto q = TestQueue::Make(o);
  if (c == nullptr || !q.ok() || !(*q)->Create(*c).ok()) return;
  const std::uint64_t almost = 0xfffffffffffffffeull;
  (void)!write((*q)->completion, &almost, sizeof almost);
  while (absl::Now() < end) {
    fcntl((*q)->completion, F_SETFL, 0);
    (*q)->hdr->cq_flags.value.store(kCqWaiting);
    if ((*q)->sq.Reserve(1) > 0) (*q)->Submit(Descriptor{});
    (*q)->cq.Release((*q)->cq.Peek(64));
  }
}

void ForkAndUse(const std::string& path, absl::Time end) {
  auto c = Hostile(path);
  auto q = TestQueue::Make({});
  auto r = TestRegion::Make(64 * 1024);
  if (c == nullptr || !q.ok() || !r.ok() || !(*r)->Register(*c).ok() || !(*q)->Create(*c).ok()) return;
  const pid_t child = fork();
  if (child == 0) {  // the grandchild uses its parent's queue and connection
    while (absl::Now() < end) {
      (*q)->Submit(FillDesc(1, (*r)->handle, 0, 4096, 1));
      (void)(*q)->Reap(1, absl::Milliseconds(20));
      (void)c->Stats();
    }
    _exit(0);
  }
  while (absl::Now() < end) {
    (*q)->Submit(Descriptor{});
    (void)(*q)->Reap(1, absl::Milliseconds(20));
  }
  waitpid(child, nullptr, 0);
}

void KillMidBatch(const std::string& path, absl::Time end) {
  auto c = Hostile(path);
  auto q = TestQueue::Make({});
  auto r = TestRegion::Make(8 << 20);
  if (c == nullptr || !q.ok() || !r.ok() || !(*r)->Register(*c).ok() || !(*q)->Create(*c).ok()) return;
  std::vector<Descriptor> batch;
  for (int i = 0; i < 16; ++i) batch.push_back(ChecksumDesc(i, (*r)->handle, 0, 8 << 20));
  (*q)->Submit(batch);
  absl::SleepFor(std::min(absl::Milliseconds(20), end - absl::Now()));
  raise(SIGKILL);
}

void ConnectionFlood(const std::string& path, absl::Time end) {
  std::vector<std::unique_ptr<RawClient>> conns;
  while (absl::Now() < end && conns.size() < 300) {
    auto c = RawClient::Connect(path);
    if (!c.ok()) break;
    if (conns.size() % 2 == 0) (void)(*c)->Hello("flood");  // half of them never say Hello
    conns.push_back(std::move(*c));
  }
}

void AliasedRegions(const std::string& path, absl::Time end) {
  auto c = Hostile(path);
  auto q = TestQueue::Make({});
  auto r = TestRegion::Make(64 * 1024);
  if (c == nullptr || !q.ok() || !r.ok() || !(*r)->Register(*c).ok()) return;
  const std::uint32_t h1 = (*r)->handle;
  if (!(*r)->Register(*c).ok() || !(*q)->Create(*c).ok()) return;
  const std::uint32_t h2 = (*r)->handle;
  while (absl::Now() < end) {
    (*q)->Submit(CopyDesc(1, h1, 0, h2, 100, 4096));
    auto d = (*q)->Reap(1, absl::Milliseconds(50));
    if (d.ok() && (*d)[0].status != static_cast<int>(CompletionStatus::kOverlap)) {
      std::fprintf(stderr, "pinring-soak: aliased COPY completed %d, not overlap\n", (*d)[0].status);
      _exit(3);  // a finding: the round fails
    }
  }
}

struct NamedAttack {
  const char* name;
  Attack run;
};
constexpr NamedAttack kAttacks[] = {
    {"index and flag scribbles", ScribbleIndices},
    {"descriptors rewritten while ringd reads them", RewriteDescriptors},
    {"bad, closed, truncated and hole-punched memfds", BadMemfds},
    {"never reaping", NeverReap},
    {"doorbell storm", DoorbellStorm},
    {"saturated, flag-flipped eventfd", SaturatedEventfd},
    {"fork, then use in the child", ForkAndUse},
    {"SIGKILL mid-batch", KillMidBatch},
    {"connection flood", ConnectionFlood},
    {"aliased regions", AliasedRegions},
};

// --- ringd's resources ---------------------------------------------------------------------------
struct Resources {
  int fds = 0;
  std::uint64_t rss_kib = 0;
  std::uint64_t registered = 0;
  int mrs = -1;
};

// What ringd's fds point at, for a leak report.
std::string ListFds(pid_t pid) {
  std::string out;
  const std::string dir = absl::StrCat("/proc/", pid, "/fd");
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char target[256] = {};
      const ssize_t n = readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
      absl::StrAppend(&out, " ", e->d_name, "=", n > 0 ? target : "?");
    }
    closedir(d);
  }
  return out;
}

// ringd's fds, less pipes past stdio: ringd opens none, but a sanitizer runtime inside it may
// (TSan's symbolizer), and those come and go on their own.
int CountFds(pid_t pid) {
  int n = 0;
  const std::string dir = absl::StrCat("/proc/", pid, "/fd");
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char target[64] = {};
      const ssize_t len = readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
      if (std::atoi(e->d_name) > 2 && len > 0 && std::string_view(target).rfind("pipe:", 0) == 0) continue;
      ++n;
    }
    closedir(d);
  }
  return n;
}

std::uint64_t RssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

int CountMrs() {
  FILE* p = popen("rdma -j res show mr 2>/dev/null", "r");
  if (p == nullptr) return -1;
  std::string out;
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (pclose(p) != 0) return -1;
  auto j = nlohmann::json::parse(out, nullptr, false);
  return j.is_array() ? static_cast<int>(j.size()) : -1;
}

absl::StatusOr<Resources> Measure(RingdProcess& ringd, bool verbs) {
  auto c = RawClient::Connect(ringd.socket_path());
  if (!c.ok()) return c.status();
  if (auto h = (*c)->Hello("soak-monitor"); !h.ok()) return h.status();
  auto text = (*c)->Stats();
  if (!text.ok()) return text.status();
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return absl::InternalError("stats are not JSON");
  Resources r;
  r.registered = j["global"]["registered_bytes"].get<std::uint64_t>();
  // Counted while this monitor connection is open, after ringd answered on it: ringd has then
  // handled the hang-ups of every connection closed before it (the previous monitor's, the
  // attacker's), and the count holds exactly one socket of ours.
  r.fds = CountFds(ringd.pid());
  c->reset();
  r.rss_kib = RssKib(ringd.pid());
  if (verbs) r.mrs = CountMrs();
  return r;
}

}  // namespace
}  // namespace pinring::testing

int main(int argc, char** argv) {
  using namespace pinring::testing;
  absl::SetProgramUsageMessage(
      "pinring-soak: honest clients doing verified work beside hostile clients and ringd "
      "restarts; checks liveness, data and leaks after every round.\n"
      "Usage: pinring-soak [--rounds=N] [--restarts=N] [--honest=N] [--backend=cpu|verbs]");
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const int restarts = absl::GetFlag(FLAGS_restarts);
  const bool verbs = absl::GetFlag(FLAGS_backend) == "verbs";
  char tmpl[] = "/tmp/pinring-soak-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 2;
  const std::string path = std::string(tmpl) + "/ringd.sock";
  const std::vector<std::string> args = {"--backend=" + absl::GetFlag(FLAGS_backend),
                                         "--socket=" + path, "--rdma_port=0",
                                         "--handshake_timeout_ms=500"};
  auto started = RingdProcess::Start(args);
  if (!started.ok()) {
    std::fprintf(stderr, "pinring-soak: cannot start ringd: %s\n", started.status().ToString().c_str());
    return 2;
  }
  std::unique_ptr<RingdProcess> ringd = std::move(*started);

  const int honest = absl::GetFlag(FLAGS_honest);
  std::vector<std::thread> threads;
  std::unique_ptr<std::atomic<bool>[]> ready(new std::atomic<bool>[honest]);
  for (int i = 0; i < honest; ++i) {
    ready[i] = false;
    threads.emplace_back(Honest, path, i, std::ref(ready[i]));
  }
  auto wait_ready = [&] {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    for (int i = 0; i < honest; ++i) {
      while (!ready[i].load() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    }
    absl::SleepFor(absl::Milliseconds(100));
  };
  wait_ready();
  auto base = Measure(*ringd, verbs);
  if (!base.ok()) {
    std::fprintf(stderr, "pinring-soak: baseline: %s\n", base.status().ToString().c_str());
    return 2;
  }
  int passed = 0, failed = 0, crashes = 0, hangs = 0, leaks = 0, done_restarts = 0;
  const int restart_every = restarts > 0 ? std::max(1, rounds / restarts) : rounds + 1;
  const absl::Time t0 = absl::Now();
  for (int round = 1; round <= rounds; ++round) {
    const NamedAttack& a = kAttacks[(round - 1) % std::size(kAttacks)];
    const pid_t child = fork();
    if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      a.run(path, absl::Now() + absl::Milliseconds(absl::GetFlag(FLAGS_round_ms)));
      _exit(0);
    }
    // The attacker gets its time plus 2 s; then it is killed (its resources must still go).
    const absl::Time kill_at = absl::Now() + absl::Milliseconds(absl::GetFlag(FLAGS_round_ms)) +
                               absl::Seconds(2);
    int status = 0;
    while (waitpid(child, &status, WNOHANG) == 0) {
      if (absl::Now() > kill_at) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    std::string problem;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) problem = "the attack found a wrong completion";
    if (!ringd->Running()) {
      ++crashes;
      problem = absl::StrCat("ringd died (crash):\n", ringd->Stderr().substr(0, 4000));
    }
    // Liveness and leaks: back to the baseline within a few seconds (teardown is asynchronous).
    absl::StatusOr<Resources> now = absl::UnavailableError("not measured");
    if (problem.empty()) {
      const absl::Time deadline = absl::Now() + absl::Seconds(5);
      while (true) {
        const absl::Time asked = absl::Now();
        now = Measure(*ringd, verbs);
        if (!now.ok() ||
            absl::Now() - asked > absl::Milliseconds(absl::GetFlag(FLAGS_answer_ms))) {
          ++hangs;
          problem = absl::StrCat("ringd did not answer in time: ", now.status().ToString());
          break;
        }
        const bool back = now->fds <= base->fds && now->registered == base->registered &&
                          now->mrs == base->mrs;
        if (back) break;
        if (absl::Now() > deadline) {
          ++leaks;
          problem = absl::StrCat("not back to baseline: fds ", now->fds, " (", base->fds,
                                 "), registered ", now->registered, " (", base->registered,
                                 "), mrs ", now->mrs, " (", base->mrs, "); ringd's fds:",
                                 ListFds(ringd->pid()));
          break;
        }
        absl::SleepFor(absl::Milliseconds(50));
      }
      if (problem.empty() && now->rss_kib > base->rss_kib + 1024u * absl::GetFlag(FLAGS_rss_slack_mib)) {
        ++leaks;
        problem = absl::StrCat("RSS ", now->rss_kib, " KiB, baseline ", base->rss_kib, " KiB");
      }
    }
    if (g_wrong.load() != 0) problem = "an honest client saw wrong data: " + g_first_wrong;
    if (problem.empty()) {
      ++passed;
    } else {
      ++failed;
      std::fprintf(stderr, "pinring-soak: round %d (%s): %s\n", round, a.name, problem.c_str());
    }
    std::printf("pinring-soak: round %d/%d %-48s %s (%llu verified ops, %llu reconnects)\n", round,
                rounds, a.name, problem.empty() ? "ok" : "FAILED",
                static_cast<unsigned long long>(g_verified.load()),
                static_cast<unsigned long long>(g_reconnects.load()));
    std::fflush(stdout);
    if (!ringd->Running() || failed > 0) break;  // stop at the first failure: its state matters
    if (round % restart_every == 0 && done_restarts < restarts) {
      const int sig = done_restarts % 2 == 0 ? SIGTERM : SIGKILL;
      auto rc = ringd->Stop(sig, absl::Seconds(10));
      if (sig == SIGTERM && (!rc.ok() || *rc != 0)) {
        ++failed;
        std::fprintf(stderr, "pinring-soak: SIGTERM did not stop ringd cleanly: %s\n",
                     rc.ok() ? std::to_string(*rc).c_str() : rc.status().ToString().c_str());
        break;
      }
      ringd.reset();
      auto again = RingdProcess::Start(args);
      if (!again.ok()) {
        ++failed;
        std::fprintf(stderr, "pinring-soak: restart failed: %s\n", again.status().ToString().c_str());
        break;
      }
      ringd = std::move(*again);
      ++done_restarts;
      for (int i = 0; i < honest; ++i) ready[i] = false;
      wait_ready();
      base = Measure(*ringd, verbs);
      if (!base.ok()) {
        ++failed;
        break;
      }
      std::printf("pinring-soak: restart %d (%s): honest clients registered again\n", done_restarts,
                  sig == SIGTERM ? "SIGTERM" : "SIGKILL");
    }
  }
  g_stop.store(true);
  for (auto& t : threads) t.join();
  if (ringd->Running()) {
    auto rc = ringd->Stop(SIGTERM, absl::Seconds(10));
    if (!rc.ok() || *rc != 0) ++failed;
  }
  ringd.reset();
  rmdir(tmpl);
  if (g_wrong.load() != 0) {
    ++failed;
    std::fprintf(stderr, "pinring-soak: an honest client saw wrong data: %s\n", g_first_wrong.c_str());
  }
  std::printf("pinring-soak: %d rounds, %d restarts, %d crashes, %d hangs, %d leaks, %llu honest "
              "ops verified, %d wrong, in %.0f s\n",
              passed + failed, done_restarts, crashes, hangs, leaks,
              static_cast<unsigned long long>(g_verified.load()),
              static_cast<int>(g_wrong.load()), absl::ToDoubleSeconds(absl::Now() - t0));
  std::printf("soak: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
