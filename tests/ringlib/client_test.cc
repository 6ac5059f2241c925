// ringlib against a real ringd (cpu backend): handshake, data, doorbell and wait modes, batches
// that wrap, many processes, fork behaviour, ringd stopping, error completions, connect errors.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "client_test_util.h"
#include "pinring/client.h"
#include "wire/wire_protocol.h"

namespace pinring {
namespace {

using ::pinring::testing::EndToEndDataCheck;
using ::pinring::testing::OptionsFor;
using ::pinring::testing::RingdProcess;
using ::pinring::testing::StartRingdOrDie;
using ::testing::HasSubstr;

constexpr std::int32_t S(CompletionStatus s) { return static_cast<std::int32_t>(s); }

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ringd_ = StartRingdOrDie("cpu");
    ASSERT_NE(ringd_, nullptr);
    auto c = Client::Connect(OptionsFor(*ringd_));
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *std::move(c);
  }
  std::unique_ptr<RingdProcess> ringd_;
  Client client_;
};

TEST_F(ClientTest, HandshakeReportsBackendAndLimits) {
  EXPECT_EQ(client_.info().backend, "cpu");
  EXPECT_EQ(client_.info().version, wire::kVersion);
  EXPECT_EQ(client_.info().socket_path, ringd_->socket_path());
  EXPECT_GT(client_.info().limits.max_sq_entries, 0u);
  EXPECT_GT(client_.info().limits.max_region_bytes, 0u);
  EXPECT_TRUE(client_.Health().ok());
}

TEST_F(ClientTest, HelloEndToEndDataVerification) {
  EXPECT_EQ(EndToEndDataCheck(client_, 64 * 1024, 0xa5), "");
}

TEST_F(ClientTest, StatsReturnsJson) {
  auto q = client_.CreateQueue({});
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE(q->SubmitAndWait(MakeNop(), absl::Seconds(5)).ok());
  auto stats = client_.Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_FALSE(stats->empty());
  EXPECT_EQ(stats->front(), '{') << *stats;
}

TEST_F(ClientTest, SubmitAndWaitRequiresAnIdleQueue) {
  auto q = client_.CreateQueue({});
  ASSERT_TRUE(q.ok()) << q.status();
  const Descriptor nop = MakeNop(7);
  ASSERT_EQ(*q->Submit({&nop, 1}), 1u);
  auto c = q->SubmitAndWait(MakeNop(8), absl::Seconds(5));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(q->WaitCompletions(1, absl::Seconds(5)).ok());
  Completion out[4];
  EXPECT_EQ(q->Reap(out), 1u);
  EXPECT_EQ(out[0].user_data, 7u);
  EXPECT_TRUE(q->SubmitAndWait(MakeNop(9), absl::Seconds(5)).ok());
}

TEST_F(ClientTest, InvalidQueueAndRegionOptionsAreRejectedLocally) {
  QueueOptions qo;
  qo.sq_entries = 3;
  EXPECT_EQ(client_.CreateQueue(qo).status().code(), absl::StatusCode::kInvalidArgument);
  RegionOptions ro;
  ro.size = 0;
  EXPECT_EQ(client_.CreateRegion(ro).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientTest, HugePageRegionWorksOrNamesTheFix) {
  RegionOptions ro;
  ro.size = 2 << 20;
  ro.huge_pages = true;
  auto r = client_.CreateRegion(ro);
  if (!r.ok()) {
    // No huge pages reserved on this machine: the error must say how to reserve them.
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("vm.nr_hugepages"));
    return;
  }
  EXPECT_TRUE(r->huge_pages());
  auto q = client_.CreateQueue({});
  ASSERT_TRUE(q.ok()) << q.status();
  auto c = q->SubmitAndWait(MakeFill(r->handle(), 0, ro.size, 0x61), absl::Seconds(5));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->status, S(CompletionStatus::kOk));
  EXPECT_EQ(r->data()[ro.size - 1], std::byte{0x61});
}

// ---- every doorbell mode x both completion waits x batch sizes, wrapping a small ring --------
using ModeParam = std::tuple<wire::DoorbellMode, wire::CompletionWait, std::uint32_t>;

class ModeTest : public ClientTest, public ::testing::WithParamInterface<ModeParam> {};

TEST_P(ModeTest, BatchesWrapTheRingAndDataIsRight) {
  const auto [doorbell, wait, batch] = GetParam();
  QueueOptions qo;
  qo.sq_entries = 64;  // smaller than the largest batch: Reserve splits it, indices wrap often
  qo.cq_entries = 64;
  qo.doorbell = doorbell;
  qo.completion_wait = wait;
  auto q = client_.CreateQueue(qo);
  ASSERT_TRUE(q.ok()) << q.status();
  RegionOptions ro;
  ro.size = 64 * 1024;
  auto region = client_.CreateRegion(ro);
  ASSERT_TRUE(region.ok()) << region.status();

  // Each descriptor i FILLs 64 bytes at slot (i % 1024) with byte i; completions must arrive in
  // order with the right user_data; at the end the region must equal a local model of it.
  constexpr std::uint64_t kTotal = 640;
  std::vector<std::uint8_t> model(ro.size, 0);
  std::uint64_t next_submit = 0, next_complete = 0;
  while (next_complete < kTotal) {
    if (next_submit < kTotal) {
      const std::uint32_t want =
          static_cast<std::uint32_t>(std::min<std::uint64_t>(batch, kTotal - next_submit));
      const std::uint32_t n = q->Reserve(want);
      for (std::uint32_t i = 0; i < n; ++i) {
        const std::uint64_t id = next_submit + i;
        q->Slot(i) = MakeFill(region->handle(), (id % 1024) * 64, 64,
                              static_cast<std::uint8_t>(id & 0xff), id);
        std::memset(model.data() + (id % 1024) * 64, static_cast<int>(id & 0xff), 64);
      }
      q->Commit(n);
      next_submit += n;
    }
    if (q->InFlight() == 0) continue;  // nothing to wait for yet
    auto ready = q->WaitCompletions(1, absl::Seconds(10));
    ASSERT_TRUE(ready.ok()) << ready.status() << " after " << next_complete;
    const std::uint32_t m = q->PeekCompletions(*ready);
    for (std::uint32_t i = 0; i < m; ++i) {
      const Completion& c = q->CompletionAt(i);
      ASSERT_EQ(c.user_data, next_complete + i);
      ASSERT_EQ(c.status, S(CompletionStatus::kOk));
      ASSERT_EQ(c.result, 64u);
    }
    q->ReleaseCompletions(m);
    next_complete += m;
  }
  EXPECT_EQ(q->InFlight(), 0u);
  EXPECT_EQ(std::memcmp(region->data(), model.data(), model.size()), 0);
  auto sum = q->SubmitAndWait(MakeChecksum(region->handle(), 0, ro.size), absl::Seconds(10));
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->result, Fnv1a64(region->bytes()));
  if (doorbell == wire::DoorbellMode::kBusyPoll) {
    EXPECT_EQ(q->doorbells_rung(), 0u);
  }
  if (doorbell == wire::DoorbellMode::kEventfd) {
    EXPECT_GT(q->doorbells_rung(), 0u);
  }
}

std::string ModeName(const ::testing::TestParamInfo<ModeParam>& info) {
  const auto [doorbell, wait, batch] = info.param;
  const char* d = doorbell == wire::DoorbellMode::kBusyPoll  ? "BusyPoll"
                  : doorbell == wire::DoorbellMode::kEventfd ? "Eventfd"
                                                             : "Adaptive";
  const char* w = wait == wire::CompletionWait::kSpin ? "Spin" : "Block";
  return std::string(d) + w + "Batch" + std::to_string(batch);
}

INSTANTIATE_TEST_SUITE_P(
    AllModes, ModeTest,
    ::testing::Combine(::testing::Values(wire::DoorbellMode::kBusyPoll,
                                         wire::DoorbellMode::kEventfd,
                                         wire::DoorbellMode::kAdaptive),
                       ::testing::Values(wire::CompletionWait::kSpin,
                                         wire::CompletionWait::kBlock),
                       ::testing::Values(1u, 8u, 32u, 128u)),
    ModeName);

// ---- many client processes -------------------------------------------------------------------
TEST_F(ClientTest, EightClientProcessesEachVerifyTheirOwnData) {
  constexpr int kChildren = 8;
  std::vector<pid_t> pids;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // The child makes its own Client: handles inherited across fork() are refused.
      auto c = Client::Connect(OptionsFor(*ringd_));
      if (!c.ok()) _exit(10);
      for (int round = 0; round < 5; ++round) {
        if (!EndToEndDataCheck(*c, 32 * 1024, static_cast<std::uint8_t>(0x10 * i + round))
                 .empty()) {
          _exit(11);
        }
      }
      _exit(0);
    }
    pids.push_back(pid);
  }
  for (int i = 0; i < kChildren; ++i) {
    int status = 0;
    ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child " << i << ": " << RingdProcess::DescribeWaitStatus(status);
  }
  EXPECT_EQ(EndToEndDataCheck(client_, 4096, 0x77), "");  // the parent is unaffected
}

// ---- fork inside ringlib ---------------------------------------------------------------------
TEST_F(ClientTest, ForkedChildGetsFailedPreconditionAndParentKeepsWorking) {
  auto q = client_.CreateQueue({});
  ASSERT_TRUE(q.ok()) << q.status();
  RegionOptions ro;
  ro.size = 4096;
  auto region = client_.CreateRegion(ro);
  ASSERT_TRUE(region.ok()) << region.status();
  ASSERT_TRUE(q->SubmitAndWait(MakeNop(), absl::Seconds(5)).ok());

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int failures = 0;
    auto expect_fp = [&](const absl::Status& s) {
      if (s.code() != absl::StatusCode::kFailedPrecondition ||
          std::string(s.message()).find("create a new pinring::Client in the child") ==
              std::string::npos) {
        ++failures;
      }
    };
    expect_fp(q->Health());
    expect_fp(q->SubmitAndWait(MakeNop(), absl::Seconds(1)).status());
    const Descriptor nop = MakeNop();
    expect_fp(q->Submit({&nop, 1}).status());
    expect_fp(q->WaitCompletions(1, absl::Seconds(1)).status());
    expect_fp(client_.CreateQueue({}).status());
    expect_fp(client_.CreateRegion(ro).status());
    expect_fp(client_.Stats().status());
    expect_fp(client_.Health());
    if (q->Reserve(1) != 0) ++failures;          // the hot path refuses too
    if (q->PeekCompletions(1) != 0) ++failures;
    // The ring is not mapped here (MADV_DONTFORK): mincore() says ENOMEM for unmapped memory.
    unsigned char vec[1];
    if (mincore(const_cast<void*>(q->ring_address()), 4096, vec) == 0 || errno != ENOMEM) {
      ++failures;
    }
    // Destroying inherited handles in the child must not tell ringd anything.
    { Queue gone = std::move(*q); }
    { Region gone = std::move(*region); }
    { Client gone = std::move(client_); }
    // A brand-new Client in the child works.
    auto fresh = Client::Connect(OptionsFor(*ringd_));
    if (!fresh.ok() || !EndToEndDataCheck(*fresh, 4096, 0x42).empty()) failures += 100;
    _exit(failures > 255 ? 255 : failures);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << RingdProcess::DescribeWaitStatus(status);
  // The parent's queue and region survived the child's destructors.
  auto c = q->SubmitAndWait(MakeFill(region->handle(), 0, 4096, 0x3c), absl::Seconds(5));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->status, S(CompletionStatus::kOk));
  EXPECT_EQ(region->data()[4095], std::byte{0x3c});
}

TEST_F(ClientTest, ForkedChildTouchingTheRingAddressGetsSigsegv) {
  auto q = client_.CreateQueue({});
  ASSERT_TRUE(q.ok()) << q.status();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Writing through the parent's ring address: must fault, not corrupt the parent's ring.
    // (Default disposition, so a sanitizer's SEGV handler does not turn the signal into exit 1.)
    signal(SIGSEGV, SIG_DFL);
    auto* tail = reinterpret_cast<volatile std::uint32_t*>(
        const_cast<void*>(static_cast<const void*>(&q->header()->sq_tail)));
    *tail = 12345;
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV)
      << RingdProcess::DescribeWaitStatus(status);
  EXPECT_EQ(q->header()->sq_tail.value.load(), 0u);
  EXPECT_TRUE(q->SubmitAndWait(MakeNop(), absl::Seconds(5)).ok());
}

// ---- ringd stopping --------------------------------------------------------------------------
TEST_F(ClientTest, RingdSigtermGivesUnavailableThenReconnectWorks) {
  auto q = client_.CreateQueue({});
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE(q->SubmitAndWait(MakeNop(), absl::Seconds(5)).ok());
  const std::string path = ringd_->socket_path();
  auto rc = ringd_->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << "ringd should exit cleanly on SIGTERM";

  auto c = q->SubmitAndWait(MakeNop(), absl::Seconds(5));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("ringd stopped"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("reconnect"));
  EXPECT_EQ(client_.Health().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client_.CreateQueue({}).status().code(), absl::StatusCode::kUnavailable);

  // A new ringd on the same path; the client reconnects and everything works again.
  auto again = RingdProcess::Start({"--backend=cpu", "--socket=" + path});
  ASSERT_TRUE(again.ok()) << again.status();
  auto fresh = Client::Connect(OptionsFor(**again));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(EndToEndDataCheck(*fresh, 8192, 0x99), "");
}

TEST_F(ClientTest, BlockedWaiterIsWokenWhenRingdIsKilled) {
  QueueOptions qo;
  qo.completion_wait = wire::CompletionWait::kBlock;
  auto q = client_.CreateQueue(qo);
  ASSERT_TRUE(q.ok()) << q.status();
  // A waiter with nothing completing: FILL a big region many times so completions lag, then
  // SIGKILL ringd while we are blocked. The control socket's hangup must wake us.
  RegionOptions ro;
  ro.size = 64 << 20;
  auto region = client_.CreateRegion(ro);
  ASSERT_TRUE(region.ok()) << region.status();
  std::vector<Descriptor> fills(64, MakeFill(region->handle(), 0, ro.size, 1));
  ASSERT_TRUE(q->Submit(fills).ok());
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    (void)ringd_->Stop(SIGKILL);
  });
  const absl::Time start = absl::Now();
  absl::Status st = absl::OkStatus();
  while (st.ok()) {  // reap until ringd dies under us
    auto r = q->WaitCompletions(1, absl::Seconds(20));
    st = r.status();
    if (r.ok()) {
      Completion out[64];
      (void)q->Reap(out);
      if (q->InFlight() == 0) st = q->Submit(fills).status();  // keep ringd busy
    }
  }
  killer.join();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("ringd stopped"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "the waiter slept until its timeout";
}

// ---- untrusted descriptors come back as error completions -------------------------------------
TEST_F(ClientTest, BadDescriptorsComeBackAsErrorCompletions) {
  auto q = client_.CreateQueue({});
  ASSERT_TRUE(q.ok()) << q.status();
  RegionOptions ro;
  ro.size = 4096;
  auto r = client_.CreateRegion(ro);
  ASSERT_TRUE(r.ok()) << r.status();
  RegionOptions ro_ro = ro;
  ro_ro.fork_mode = ForkMode::kReadOnly;
  auto readonly = client_.CreateRegion(ro_ro);
  ASSERT_TRUE(readonly.ok()) << readonly.status();
  const std::uint32_t h = r->handle();

  struct Case {
    const char* what;
    Descriptor d;
    CompletionStatus want;
  };
  Descriptor bad_opcode = MakeNop();
  bad_opcode.opcode = 77;
  Descriptor bad_reserved = MakeNop();
  bad_reserved.reserved2 = 1;
  Descriptor bad_flags = MakeNop();
  bad_flags.flags = 0x80;
  const std::vector<Case> cases = {
      {"unknown region", MakeFill(h + 1000, 0, 8, 0), CompletionStatus::kUnknownRegion},
      {"checksum unknown region", MakeChecksum(0xdeadbeef, 0, 8), CompletionStatus::kUnknownRegion},
      {"past the end", MakeFill(h, 4000, 200, 0), CompletionStatus::kOutOfBounds},
      {"offset overflow", MakeChecksum(h, ~0ull - 2, 8), CompletionStatus::kOutOfBounds},
      {"copy out of bounds", MakeCopy(h, 0, h, 4090, 100), CompletionStatus::kOutOfBounds},
      {"bad opcode", bad_opcode, CompletionStatus::kBadOpcode},
      {"bad reserved", bad_reserved, CompletionStatus::kBadReserved},
      {"bad flags", bad_flags, CompletionStatus::kBadFlags},
      {"misaligned pattern", MakeFillPattern64(h, 3, 16, 0x1122334455667788ull),
       CompletionStatus::kMisaligned},
      {"overlapping copy", MakeCopy(h, 0, h, 8, 64), CompletionStatus::kOverlap},
      {"write to read-only", MakeFill(readonly->handle(), 0, 8, 1),
       CompletionStatus::kReadOnlyRegion},
  };
  for (const Case& c : cases) {
    auto got = q->SubmitAndWait(c.d, absl::Seconds(5));
    ASSERT_TRUE(got.ok()) << c.what << ": " << got.status();
    EXPECT_EQ(got->status, S(c.want))
        << c.what << ": got " << CompletionStatusName(static_cast<CompletionStatus>(got->status))
        << ", want " << CompletionStatusName(c.want);
  }
  // The queue still works after every rejection.
  auto ok = q->SubmitAndWait(MakeFillPattern64(h, 8, 16, 0x1122334455667788ull), absl::Seconds(5));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->status, S(CompletionStatus::kOk));
}

// ---- connect errors that name the fix --------------------------------------------------------
TEST(ConnectErrors, MissingSocketNamesTheFix) {
  ClientOptions o;
  o.socket_path = "/tmp/pinring-no-such-dir/ringd.sock";
  auto c = Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("ringd is not running at /tmp/pinring-no-such-dir/ringd.sock"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("systemctl start ringd"));
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("ringd --socket=/tmp/pinring-no-such-dir/ringd.sock"));
}

TEST(ConnectErrors, SocketPathResolutionOrder) {
  ClientOptions o;
  o.socket_path = "/explicit.sock";
  EXPECT_EQ(ResolveSocketPath(o), "/explicit.sock");
  o.socket_path.clear();
  setenv("PINRING_SOCKET", "/from-env.sock", 1);
  EXPECT_EQ(ResolveSocketPath(o), "/from-env.sock");
  unsetenv("PINRING_SOCKET");
  EXPECT_EQ(ResolveSocketPath(o), "/run/pinring/ringd.sock");
}

// A listening SOCK_SEQPACKET socket at a temp path, for tests that need a fake ringd.
struct FakeListener {
  FakeListener() {
    char tmpl[] = "/tmp/pinring-fake-XXXXXX";
    dir = mkdtemp(tmpl);
    path = dir + "/ringd.sock";
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd, 4), 0);
  }
  ~FakeListener() {
    close(fd);
    unlink(path.c_str());
    rmdir(dir.c_str());
  }
  std::string dir, path;
  int fd = -1;
};

TEST(ConnectErrors, PermissionDeniedNamesTheGroup) {
  FakeListener l;
  ASSERT_EQ(chmod(l.dir.c_str(), 0700), 0);
  if (getuid() != 0) {
    GTEST_SKIP() << "needs root to drop to an unprivileged uid for the EACCES check";
  }
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(20);
    ClientOptions o;
    o.socket_path = l.path;
    auto c = Client::Connect(o);
    if (c.ok()) _exit(21);
    if (c.status().code() != absl::StatusCode::kPermissionDenied) _exit(22);
    const std::string m(c.status().message());
    if (m.find("permission denied on " + l.path) == std::string::npos) _exit(23);
    if (m.find("add your user to the `pinring` group") == std::string::npos) _exit(24);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << RingdProcess::DescribeWaitStatus(status);
}

TEST(ConnectErrors, VersionMismatchIsFailedPrecondition) {
  FakeListener l;
  std::thread server([&] {
    const int c = accept(l.fd, nullptr, nullptr);
    if (c < 0) return;
    char buf[wire::kMaxMessageSize];
    (void)recv(c, buf, sizeof buf, 0);
    wire::HelloReply body{};
    auto m = wire::MakeMessage(wire::MessageType::kHelloReply, 1, body);
    m.header.version = wire::kVersion + 1;  // a future ringd
    (void)send(c, &m, sizeof m, MSG_NOSIGNAL);
    absl::SleepFor(absl::Milliseconds(200));
    close(c);
  });
  ClientOptions o;
  o.socket_path = l.path;
  o.request_timeout = absl::Seconds(5);
  auto c = Client::Connect(o);
  server.join();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("version mismatch"));
}

}  // namespace
}  // namespace pinring
