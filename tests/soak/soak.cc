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
#include <cstring>
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
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ringd_process.h"
#include "common/self_rdma_address.h"
#include "pinring/descriptors.h"
#include "verbs/rdma_channel.h"
#include "pinring/rdma_queue.h"
#include "verbs/verbs_device.h"
#include "wire/rdma_wire.h"
#include "service/raw_client.h"
#include "tools/common/cli_help.h"

ABSL_FLAG(int, honest, 3, "Honest clients (threads doing verified work)");
ABSL_FLAG(int, rounds, 40, "Hostile rounds (one attack each, in a forked process)");
ABSL_FLAG(int, restarts, 4, "ringd restarts spread over the rounds (SIGTERM and SIGKILL alternately)");
ABSL_FLAG(std::string, backend, "cpu", "ringd --backend");
ABSL_FLAG(int, answer_ms, 5000, "Bound on ringd's answer to a StatsRequest after each round");
ABSL_FLAG(int, rss_slack_mib, 64, "RSS growth over the baseline still counted as no leak");
ABSL_FLAG(int, round_ms, 300, "How long each attack runs");
ABSL_FLAG(bool, rdma, false,
          "Also soak the rdma transport (needs an RDMA device, e.g. inside deploy/softroce/pinring-rxe "
          "run): ringd listens on --rdma_port, honest rdma clients verify their data and the attacks "
          "include the rdma transport's");
ABSL_FLAG(int, settle_ms, 0,
          "How long ringd may take after a round to free what the attacker held (then: a leak). "
          "0: 5 s, or 15 s with --rdma, where ringd's rdma listener can spend its 10 s RDMA "
          "operation timeout on a client that died mid-batch");
ABSL_FLAG(std::string, only, "", "Run only the attacks whose name contains this text (e.g. rdma)");
ABSL_FLAG(std::string, attack_child, "",
          "Internal: run this one attack against --attack_socket (and the rdma listener at "
          "--attack_rdma, ADDRESS:PORT) for --round_ms, then exit. The soak re-executes itself so "
          "that every attacker starts clean: a fork of the soak would inherit librdmacm's device "
          "contexts, and the attacker's verbs objects would outlive it in the soak's fds");
ABSL_FLAG(std::string, attack_socket, "", "Internal: see --attack_child");
ABSL_FLAG(std::string, attack_rdma, "", "Internal: see --attack_child");
ABSL_FLAG(int, honest_rdma, 2, "Honest rdma transport clients (threads), with --rdma");

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


// --- the rdma transport (--rdma) -----------------------------------------------------------------
// Where ringd's rdma listener is: the address of this host's RDMA interface and ringd's port.
std::string g_rdma_addr;
std::uint16_t g_rdma_port = 0;

RdmaQueueOptions RdmaOptions(std::uint32_t sq = 16) {
  RdmaQueueOptions o;
  o.address = g_rdma_addr;
  o.port = g_rdma_port;
  o.sq_entries = sq;
  o.timeout = absl::Seconds(10);
  return o;
}

// One honest rdma client session: its rings and two regions registered once (so the MR count
// stays put between rounds), then COPY, CHECKSUM and FILL, each checked against its own bytes.
void HonestRdmaSession(int id, std::atomic<bool>& ready) {
  auto q = RdmaQueue::Connect(RdmaOptions());
  if (!q.ok()) return;
  constexpr std::size_t kSize = 64 * 1024;
  auto a = (*q)->CreateRegion(kSize);
  auto b = (*q)->CreateRegion(kSize);
  if (!a.ok() || !b.ok()) return;
  ready.store(true);
  std::mt19937_64 g(static_cast<std::uint64_t>(id) * 104729 + g_reconnects.load());
  const absl::Duration kWait = absl::Seconds(20);
  // ringd answered but did not do the work: a restart (shutting down) is fine, anything else not.
  auto bad = [&](const Completion& c, std::uint64_t ud, const char* op) {
    if (c.status == static_cast<int>(CompletionStatus::kShuttingDown)) return true;
    if (c.status != 0 || c.user_data != ud) {
      Wrong(absl::StrCat("honest rdma client ", id, ": ", op, " status ", c.status, " user_data ",
                         c.user_data));
      return true;
    }
    return false;
  };
  while (!g_stop.load()) {
    for (std::byte& v : (*a)->bytes()) v = static_cast<std::byte>(g());
    const std::uint64_t off = (g() % (kSize / 8)) * 4;
    const std::uint64_t len = 1 + g() % (kSize - off - 1);
    auto c = (*q)->SubmitAndWait(MakeCopy((*a)->handle(), off, (*b)->handle(), off, len, 1), kWait);
    if (!c.ok() || bad(*c, 1, "COPY")) return;
    if (std::memcmp((*a)->data() + off, (*b)->data() + off, len) != 0) {
      return Wrong(absl::StrCat("honest rdma client ", id, ": COPY left different bytes"));
    }
    auto s = (*q)->SubmitAndWait(MakeChecksum((*b)->handle(), off, len, 2), kWait);
    if (!s.ok() || bad(*s, 2, "CHECKSUM")) return;
    if (s->result != Fnv1a64((*a)->bytes().subspan(off, len))) {
      return Wrong(absl::StrCat("honest rdma client ", id, ": CHECKSUM differs from the bytes"));
    }
    const std::uint8_t v = static_cast<std::uint8_t>(g());
    auto f = (*q)->SubmitAndWait(MakeFill((*b)->handle(), off, len, v, 3), kWait);
    if (!f.ok() || bad(*f, 3, "FILL")) return;
    for (std::uint64_t i = off; i < off + len; ++i) {
      if ((*b)->data()[i] != std::byte{v}) {
        return Wrong(absl::StrCat("honest rdma client ", id, ": FILL left byte ", i, " unset"));
      }
    }
    g_verified.fetch_add(3);
  }
}

void HonestRdma(int id, std::atomic<bool>& ready) {
  while (!g_stop.load()) {
    HonestRdmaSession(id, ready);
    ready.store(false);
    if (g_stop.load()) return;
    g_reconnects.fetch_add(1);
    absl::SleepFor(absl::Milliseconds(200));
  }
}

// Every rdma attack makes at least one attempt, then repeats until `end`.
template <typename F>
void Repeat(absl::Time end, F&& once) {
  do {
    once();
  } while (absl::Now() < end);
}

void RdmaGarbageSends(const std::string&, absl::Time end) {
  std::mt19937_64 g(11);
  Repeat(end, [&] {
    auto q = RdmaQueue::Connect(RdmaOptions());
    if (!q.ok()) return;
    const bool inline_db = g() % 2 == 0;
    std::vector<std::byte> junk(1 + g() % (inline_db ? rdma::kRequestSlotBytes : 80));
    for (std::byte& b : junk) b = static_cast<std::byte>(g());
    if (inline_db && junk.size() >= sizeof(rdma::ControlMessage)) {
      // An inline doorbell's header (magic, type) with a random count, tail and descriptors.
      rdma::ControlMessage m;
      std::memcpy(&m, junk.data(), sizeof m);
      m.magic = rdma::kRdmaMagic;
      m.type = static_cast<std::uint16_t>(rdma::ControlType::kDoorbellInline);
      if (g() % 2 == 0) m.length = 1 + g() % rdma::kMaxInlineDescriptors;
      if (g() % 2 == 0) m.value = m.length;  // the tail a first doorbell would carry
      std::memcpy(junk.data(), &m, sizeof m);
    } else if (g() % 2 == 0 && junk.size() >= 4) {
      junk[0] = std::byte{1};  // a real doorbell's first bytes with the rest scribbled
    }
    (void)(*q)->SendRawForTesting(junk);
    Completion c;
    (void)(*q)->Reap(absl::MakeSpan(&c, 1), absl::Milliseconds(100));
  });
}

void RdmaScribbledRing(const std::string&, absl::Time end) {
  std::mt19937_64 g(12);
  Repeat(end, [&] {
    auto q = RdmaQueue::Connect(RdmaOptions());
    if (!q.ok()) return;
    for (int i = 0; i < 8; ++i) {
      // Descriptors of random bytes, then a tail that may or may not fit the ring.
      for (std::uint32_t s = 0; s < (*q)->sq_entries(); ++s) {
        auto* w = reinterpret_cast<std::uint64_t*>((*q)->SqSlotForTesting(s));
        for (std::size_t k = 0; k < sizeof(Descriptor) / 8; ++k) w[k] = g();
      }
      const std::uint32_t tail = g() % 4 == 0 ? static_cast<std::uint32_t>(g())
                                              : (*q)->sq_tail() + static_cast<std::uint32_t>(g() % 20);
      if (!(*q)->RingDoorbellForTesting(tail).ok()) return;
      Completion c[16];
      if (!(*q)->Reap(absl::MakeSpan(c), absl::Milliseconds(50)).ok()) return;
    }
  });
}

void RdmaPulledMemory(const std::string&, absl::Time end) {
  std::mt19937_64 g(13);
  Repeat(end, [&] {
    auto q = RdmaQueue::Connect(RdmaOptions());
    if (!q.ok()) return;
    auto r = (*q)->CreateRegion(16 * 1024);
    if (!r.ok()) return;
    if (g() % 2 == 0) {
      // ringd still holds the grant; its RDMA to the region must fail, not ringd.
      (void)(*q)->RevokeRegionMrForTesting(*r);
      (void)(*q)->Submit({MakeFill((*r)->handle(), 0, 16 * 1024, 1)});
    } else {
      // ringd's RDMA READ of the ring itself fails.
      (void)(*q)->DeregisterRingsForTesting();
      (void)(*q)->Submit({MakeNop(1)});
    }
    Completion c;
    (void)(*q)->Reap(absl::MakeSpan(&c, 1), absl::Milliseconds(300));
  });
}

void RdmaBadConnect(const std::string&, absl::Time end) {
  std::mt19937_64 g(14);
  Repeat(end, [&] {
    auto ch = rdma::RdmaChannel::Resolve(g_rdma_addr, g_rdma_port, absl::Seconds(5));
    if (!ch.ok()) return;
    auto dev = VerbsDevice::Adopt((*ch)->verbs(), (*ch)->port_num());
    if (!dev.ok() || !(*ch)->CreateQp(**dev, {}).ok()) return;
    // Private data of any length the REQ carries (rdma_cm allows up to 56 bytes), random bytes,
    // sometimes with a real version word in front.
    std::vector<std::byte> junk(g() % 57);
    for (std::byte& b : junk) b = static_cast<std::byte>(g());
    std::string reply;
    (void)(*ch)->Connect(junk, absl::Seconds(5), &reply);
    (*ch)->DestroyQp();
  });
}

void RdmaFloodAndKill(const std::string&, absl::Time end) {
  // Connections that each leave a large batch and a doorbell storm behind, then the process dies
  // without a goodbye: ringd must drop them all, and free what they held.
  std::vector<std::unique_ptr<RdmaQueue>> qs;
  do {
    auto q = RdmaQueue::Connect(RdmaOptions());
    if (!q.ok()) break;
    auto r = (*q)->CreateRegion(1 << 20);
    if (r.ok()) {
      std::vector<Descriptor> batch;
      for (int i = 0; i < 8; ++i) batch.push_back(MakeChecksum((*r)->handle(), 0, 1 << 20, i));
      (void)(*q)->Submit(batch);
    }
    for (int i = 0; i < 200; ++i) {
      if (!(*q)->RingDoorbellForTesting((*q)->sq_tail()).ok()) break;
    }
    qs.push_back(std::move(*q));
  } while (absl::Now() < end && qs.size() < 6);
  raise(SIGKILL);
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
constexpr NamedAttack kRdmaAttacks[] = {
    {"rdma: garbage control SENDs", RdmaGarbageSends},
    {"rdma: scribbled descriptors and doorbell tails", RdmaScribbledRing},
    {"rdma: rings and region MRs pulled under ringd", RdmaPulledMemory},
    {"rdma: bad ConnectRequest private data", RdmaBadConnect},
    {"rdma: connection flood, then SIGKILL mid-batch", RdmaFloodAndKill},
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

std::string LastLines(const std::string& text, int n) {
  std::size_t at = text.size();
  while (n-- > 0 && at > 0) {
    const std::size_t nl = text.rfind('\n', at - 1);
    if (nl == std::string::npos) return text;
    at = nl;
  }
  return text.substr(at);
}

std::string RdmaMrs() {
  std::string out;
  if (FILE* p = popen("rdma res show mr 2>&1", "r")) {
    char buf[4096];
    while (std::size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    pclose(p);
  }
  return out;
}

absl::StatusOr<Resources> Measure(RingdProcess& ringd, bool verbs) {
  auto c = RawClient::Connect(ringd.socket_path());
  if (!c.ok()) return c.status();
  if (auto h = (*c)->Hello("soak-monitor"); !h.ok()) {
    return absl::Status(h.status().code(), absl::StrCat("Hello: ", h.status().message()));
  }
  auto text = (*c)->Stats();
  if (!text.ok()) {
    return absl::Status(text.status().code(), absl::StrCat("StatsRequest: ", text.status().message()));
  }
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
  static const char kUsage[] =
      "pinring-soak: honest clients doing verified work beside hostile clients and ringd "
      "restarts; checks liveness, data and leaks after every round.\n"
      "Usage: pinring-soak [--rounds=N] [--restarts=N] [--honest=N] [--backend=cpu|verbs] [--rdma]";
  pinring::cli::HandleHelp(argc, argv, kUsage, {"tests/soak/"});  // stdout, exit 0
  absl::SetProgramUsageMessage(kUsage);
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  if (const std::string name = absl::GetFlag(FLAGS_attack_child); !name.empty()) {
    const std::string rdma_at = absl::GetFlag(FLAGS_attack_rdma);
    const std::size_t colon = rdma_at.rfind(':');
    if (colon != std::string::npos) {
      g_rdma_addr = rdma_at.substr(0, colon);
      g_rdma_port = static_cast<std::uint16_t>(std::atoi(rdma_at.c_str() + colon + 1));
    }
    const absl::Time end = absl::Now() + absl::Milliseconds(absl::GetFlag(FLAGS_round_ms));
    for (const NamedAttack& a : kAttacks) {
      if (name == a.name) a.run(absl::GetFlag(FLAGS_attack_socket), end);
    }
    for (const NamedAttack& a : kRdmaAttacks) {
      if (name == a.name) a.run(absl::GetFlag(FLAGS_attack_socket), end);
    }
    return 0;
  }
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const int restarts = absl::GetFlag(FLAGS_restarts);
  const bool rdma = absl::GetFlag(FLAGS_rdma);
  // MRs are counted (`rdma res show mr`) wherever ringd registers any: the verbs backend's regions,
  // the rdma transport's rings and staging.
  const bool verbs = absl::GetFlag(FLAGS_backend) == "verbs" || rdma;
  std::vector<NamedAttack> attacks(std::begin(kAttacks), std::end(kAttacks));
  if (rdma) {
    g_rdma_addr = SelfRdmaAddress();
    if (g_rdma_addr.empty()) {
      std::fprintf(stderr, "pinring-soak: --rdma needs an RDMA device with an IPv4 address (set "
                           "PINRING_SELF_ADDR, or run inside deploy/softroce/pinring-rxe run)\n");
      return 2;
    }
    g_rdma_port = static_cast<std::uint16_t>(19000 + getpid() % 500);
    attacks.insert(attacks.end(), std::begin(kRdmaAttacks), std::end(kRdmaAttacks));
  }
  if (const std::string only = absl::GetFlag(FLAGS_only); !only.empty()) {
    std::erase_if(attacks, [&](const NamedAttack& a) { return !absl::StrContains(a.name, only); });
    if (attacks.empty()) {
      std::fprintf(stderr, "pinring-soak: --only=%s matches no attack\n", only.c_str());
      return 2;
    }
  }
  char tmpl[] = "/tmp/pinring-soak-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 2;
  const std::string path = std::string(tmpl) + "/ringd.sock";
  const std::vector<std::string> args = {"--backend=" + absl::GetFlag(FLAGS_backend),
                                         "--socket=" + path,
                                         absl::StrCat("--rdma_port=", rdma ? g_rdma_port : 0),
                                         "--handshake_timeout_ms=500"};
  // Starts ringd and, with --rdma, waits until its rdma listener is up.
  auto start = [&]() -> absl::StatusOr<std::unique_ptr<RingdProcess>> {
    auto r = RingdProcess::Start(args);
    if (!r.ok() || !rdma) return r;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      const std::string err = (*r)->Stderr();
      if (err.find("rdma transport listening") != std::string::npos) return r;
      if (err.find("rdma transport disabled") != std::string::npos) {
        return absl::FailedPreconditionError("ringd could not start its rdma listener:\n" + err);
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return absl::DeadlineExceededError("ringd's rdma listener did not come up within 30 s");
  };
  auto started = start();
  if (!started.ok()) {
    std::fprintf(stderr, "pinring-soak: cannot start ringd: %s\n", started.status().ToString().c_str());
    return 2;
  }
  std::unique_ptr<RingdProcess> ringd = std::move(*started);

  const int honest = absl::GetFlag(FLAGS_honest);
  const int honest_rdma = rdma ? absl::GetFlag(FLAGS_honest_rdma) : 0;
  const int clients = honest + honest_rdma;
  std::vector<std::thread> threads;
  std::unique_ptr<std::atomic<bool>[]> ready(new std::atomic<bool>[clients]);
  for (int i = 0; i < clients; ++i) {
    ready[i] = false;
    if (i < honest) {
      threads.emplace_back(Honest, path, i, std::ref(ready[i]));
    } else {
      threads.emplace_back(HonestRdma, i, std::ref(ready[i]));
    }
  }
  // Every honest client connected and registered, or false after 60 s (the baseline would be
  // wrong without them).
  auto wait_ready = [&] {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    for (int i = 0; i < clients; ++i) {
      while (!ready[i].load()) {
        if (absl::Now() > deadline) {
          std::fprintf(stderr, "pinring-soak: honest client %d did not get ready within 60 s\n", i);
          return false;
        }
        absl::SleepFor(absl::Milliseconds(10));
      }
    }
    absl::SleepFor(absl::Milliseconds(100));
    return true;
  };
  if (!wait_ready()) return 2;
  auto base = Measure(*ringd, verbs);
  if (!base.ok()) {
    std::fprintf(stderr, "pinring-soak: baseline: %s\n", base.status().ToString().c_str());
    return 2;
  }
  int passed = 0, failed = 0, crashes = 0, hangs = 0, leaks = 0, done_restarts = 0;
  const int restart_every = restarts > 0 ? std::max(1, rounds / restarts) : rounds + 1;
  const absl::Time t0 = absl::Now();
  for (int round = 1; round <= rounds; ++round) {
    const NamedAttack& a = attacks[(round - 1) % attacks.size()];
    // The attacker: this program again, exec'd fresh (see --attack_child).
    const std::vector<std::string> child_args = {
        "pinring-soak", absl::StrCat("--attack_child=", a.name), "--attack_socket=" + path,
        absl::StrCat("--attack_rdma=", g_rdma_addr, ":", g_rdma_port),
        absl::StrCat("--round_ms=", absl::GetFlag(FLAGS_round_ms))};
    std::vector<char*> child_argv;
    for (const std::string& arg : child_args) child_argv.push_back(const_cast<char*>(arg.c_str()));
    child_argv.push_back(nullptr);
    const pid_t child = fork();
    if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      execv("/proc/self/exe", child_argv.data());
      _exit(127);
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
    absl::Duration settle;  // how long ringd took to be back to its baseline
    if (problem.empty()) {
      const absl::Time settle_from = absl::Now();
      const int settle_ms = absl::GetFlag(FLAGS_settle_ms) > 0 ? absl::GetFlag(FLAGS_settle_ms)
                            : rdma                           ? 15000
                                                             : 5000;
      const absl::Time deadline = settle_from + absl::Milliseconds(settle_ms);
      while (true) {
        const absl::Time asked = absl::Now();
        now = Measure(*ringd, verbs);
        if (!now.ok() ||
            absl::Now() - asked > absl::Milliseconds(absl::GetFlag(FLAGS_answer_ms))) {
          ++hangs;
          problem = absl::StrCat("ringd did not answer in time: ", now.status().ToString(),
                                 "\nthe end of ringd's log:\n", LastLines(ringd->Stderr(), 30));
          break;
        }
        const bool back = now->fds <= base->fds && now->registered == base->registered &&
                          now->mrs == base->mrs;
        if (back) {
          settle = absl::Now() - settle_from;
          break;
        }
        if (absl::Now() > deadline) {
          ++leaks;
          problem = absl::StrCat("not back to baseline: fds ", now->fds, " (", base->fds,
                                 "), registered ", now->registered, " (", base->registered,
                                 "), mrs ", now->mrs, " (", base->mrs, "); ringd's fds:",
                                 ListFds(ringd->pid()),
                                 now->mrs != base->mrs ? "\n`rdma res show mr`:\n" + RdmaMrs() : "",
                                 "\nthe end of ringd's log:\n", LastLines(ringd->Stderr(), 20));
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
    std::printf("pinring-soak: round %d/%d %-48s %s (%llu verified ops, %llu reconnects, settled "
                "in %lld ms)\n", round, rounds, a.name, problem.empty() ? "ok" : "FAILED",
                static_cast<unsigned long long>(g_verified.load()),
                static_cast<unsigned long long>(g_reconnects.load()),
                static_cast<long long>(absl::ToInt64Milliseconds(settle)));
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
      // Cleared while no ringd runs: an honest client that registers with the new ringd sets its
      // flag after this. (Cleared after the start, a client quick enough to register first had
      // its flag wiped and was waited for in vain: seen under ASan.)
      for (int i = 0; i < clients; ++i) ready[i] = false;
      auto again = start();
      if (!again.ok()) {
        ++failed;
        std::fprintf(stderr, "pinring-soak: restart failed: %s\n", again.status().ToString().c_str());
        break;
      }
      ringd = std::move(*again);
      ++done_restarts;
      if (!wait_ready()) {
        ++failed;
        break;
      }
      base = Measure(*ringd, verbs);
      if (!base.ok()) {
        ++failed;
        std::fprintf(stderr, "pinring-soak: baseline after restart: %s\n",
                     base.status().ToString().c_str());
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
