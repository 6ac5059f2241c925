// Region table, config/limits, untrusted memfd checks, counters, and QueueServer in-process
// (including the two statuses only execution produces: kDeviceError and kShuttingDown).
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <span>
#include <vector>

#include "pinring/descriptors.h"
#include "service/backend.h"
#include "service/config.h"
#include "service/counters.h"
#include "service/descriptor_validator.h"
#include "service/queue_server.h"
#include "service/region_table.h"
#include "service/untrusted_memfd.h"

namespace pinring::ringd {
namespace {

TEST(RegionTableTest, HandlesAreUniqueAndLimited) {
  RegionTable t(2);
  auto a = t.Insert(std::make_unique<Region>());
  auto b = t.Insert(std::make_unique<Region>());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, 0u);
  EXPECT_NE(*a, *b);
  auto c = t.Insert(std::make_unique<Region>());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(c.status().message().find("--max_regions"), absl::string_view::npos);
  ASSERT_TRUE(t.Remove(*a).ok());
  EXPECT_EQ(t.Remove(*a).status().code(), absl::StatusCode::kNotFound);
  auto d = t.Insert(std::make_unique<Region>());
  ASSERT_TRUE(d.ok());
  EXPECT_NE(*d, *a) << "handles are never reused";
  {
    absl::ReaderMutexLock l(&t.mu());
    EXPECT_EQ(t.FindLocked(*a), nullptr);
    EXPECT_NE(t.FindLocked(*d), nullptr);
  }
  EXPECT_EQ(t.RemoveAll().size(), 2u);
  EXPECT_EQ(t.size(), 0u);
}

// Limits left at 0 come from the machine, and what they allow must fit in the fds ringd has:
// every connection (the admin reserve included) at its worst case, plus ringd's own.
TEST(ConfigTest, DerivedTenantLimitsFitTheFdLimit) {
  for (std::uint64_t nofile : {1024ull, 20000ull, 65536ull, 1048576ull}) {
    Config c;
    DeriveTenantLimits(c, 16ull << 30, nofile);
    const std::uint64_t need =
        kDaemonFds + FdsPerConnection(c.limits) *
                         (std::uint64_t{c.tenants.max_connections} + kAdminReserveConnections);
    EXPECT_LE(need, nofile) << "RLIMIT_NOFILE " << nofile << ": " << c.tenants.max_connections;
    EXPECT_GE(c.tenants.max_connections, 1u);
    EXPECT_LE(c.tenants.max_connections, 1024u);
    EXPECT_EQ(c.tenants.max_registered_bytes, 8ull << 30);
    EXPECT_EQ(c.tenants.max_registered_bytes_per_uid, 4ull << 30);
    EXPECT_GE(c.tenants.max_queues_per_uid, 1u);
  }
  Config set;  // a value given is kept
  set.tenants.max_connections = 7;
  DeriveTenantLimits(set, 1 << 30, 1024);
  EXPECT_EQ(set.tenants.max_connections, 7u);
  EXPECT_EQ(set.tenants.max_connections_per_uid, 3u);
}

TEST(ConfigTest, DefaultsAreValidAndBadValuesNameTheFlag) {
  Config c;
  c.socket_path = "/tmp/x.sock";
  EXPECT_TRUE(ValidateConfig(c).ok());
  Config bad = c;
  bad.pollers = 0;
  EXPECT_NE(ValidateConfig(bad).message().find("--pollers"), absl::string_view::npos);
  bad = c;
  bad.limits.max_ring_entries = 1000;
  EXPECT_NE(ValidateConfig(bad).message().find("--max_ring_entries"), absl::string_view::npos);
  bad = c;
  bad.socket_path = std::string(200, 'a');
  EXPECT_FALSE(ValidateConfig(bad).ok());
  bad = c;
  bad.limits.max_queues = 0;
  EXPECT_FALSE(ValidateConfig(bad).ok());
  bad = c;
  bad.adaptive_poll_us = kMaxAdaptivePollUs + 1;
  EXPECT_FALSE(ValidateConfig(bad).ok());
  bad = c;
  bad.rdma.bind_address = "not-an-address";
  EXPECT_NE(ValidateConfig(bad).message().find("--rdma_bind"), absl::string_view::npos);
  bad = c;
  bad.rdma.op_timeout_ms = 0;
  EXPECT_NE(ValidateConfig(bad).message().find("--rdma_op_timeout_ms"), absl::string_view::npos);
  bad = c;
  bad.rdma.max_connections = 0;
  EXPECT_NE(ValidateConfig(bad).message().find("--rdma_max_connections"), absl::string_view::npos);
  EXPECT_EQ(*ParseOctalMode("0660"), 0660u);
  EXPECT_FALSE(ParseOctalMode("0968").ok());
  EXPECT_FALSE(ParseOctalMode("").ok());
  EXPECT_EQ(*ParseBackendKind("verbs"), BackendKind::kVerbs);
  EXPECT_FALSE(ParseBackendKind("gpu").ok());
  const wire::Limits w = c.limits.ToWire();
  EXPECT_EQ(w.max_sq_entries, c.limits.max_ring_entries);
  EXPECT_EQ(w.max_pinned_bytes, c.limits.max_pinned_bytes);
}

int Memfd(std::size_t size, bool seal) {
  const int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  if (seal) {
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
  }
  return fd;
}

TEST(UntrustedMemfdTest, RequiresShrinkSealAndSize) {
  UniqueFd unsealed(Memfd(8192, false));
  auto m = MapUntrustedMemfd(unsealed.get(), 8192, SizeRule::kExact, PROT_READ, "x");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("F_SEAL_SHRINK"), absl::string_view::npos);
  UniqueFd sealed(Memfd(8192, true));
  EXPECT_FALSE(MapUntrustedMemfd(sealed.get(), 4096, SizeRule::kExact, PROT_READ, "x").ok());
  EXPECT_FALSE(MapUntrustedMemfd(sealed.get(), 12288, SizeRule::kAtLeast, PROT_READ, "x").ok());
  EXPECT_TRUE(MapUntrustedMemfd(sealed.get(), 4096, SizeRule::kAtLeast, PROT_READ, "x").ok());
  EXPECT_TRUE(MapUntrustedMemfd(sealed.get(), 8192, SizeRule::kExact, PROT_READ, "x").ok());
  UniqueFd pipe_ends[2];
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pipe_ends[0].reset(p[0]);
  pipe_ends[1].reset(p[1]);
  EXPECT_FALSE(MapUntrustedMemfd(p[0], 4096, SizeRule::kAtLeast, PROT_READ, "x").ok());
  EXPECT_FALSE(CheckIsEventfd(p[0], "x").ok());
  UniqueFd efd(eventfd(0, EFD_CLOEXEC));
  EXPECT_TRUE(CheckIsEventfd(efd.get(), "x").ok());
}

TEST(CountersTest, SnapshotSumsAndJson) {
  Counters c;
  Counters::Add(c.ops[1], 3);
  Counters::Add(c.completions[static_cast<int>(CompletionStatus::kOverlap)]);
  CountersSnapshot s = c.Snapshot();
  s += c.Snapshot();
  EXPECT_EQ(s.ops[1], 6u);
  nlohmann::json j = s.ToJson();
  EXPECT_EQ(j["ops"]["copy"], 6);
  EXPECT_EQ(j["completions"]["overlap"], 2);
}

// A backend whose device always fails.
class FailingBackend final : public Backend {
 public:
  absl::string_view name() const override { return "failing"; }
  std::string device() const override { return ""; }
  std::uint64_t default_serve_budget() const override { return 8192; }
  absl::StatusOr<std::unique_ptr<BackendMemory>> Register(void*, std::size_t, ForkMode) override {
    return absl::UnavailableError("no");
  }
  OpResult Execute(const ValidatedOp&) override { return {CompletionStatus::kDeviceError, 0}; }
};

struct InProcessQueue {
  explicit InProcessQueue(Backend* backend, RegionTable* regions, Counters* counters) {
    const QueueLayout l = ComputeQueueLayout(8, 8);
    UniqueFd fd(Memfd(l.total_size, true));
    auto m = MapUntrustedMemfd(fd.get(), l.total_size, SizeRule::kExact, PROT_READ | PROT_WRITE, "q");
    client = mmap(nullptr, l.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    size = l.total_size;
    hdr = static_cast<QueueHeader*>(client);
    auto* base = static_cast<std::byte*>(client);
    sq = SubmissionProducer(reinterpret_cast<Descriptor*>(base + l.sq_offset), 8,
                            &hdr->sq_tail.value, &hdr->sq_head.value);
    cq = CompletionConsumer(reinterpret_cast<const Completion*>(base + l.cq_offset), 8,
                            &hdr->cq_head.value, &hdr->cq_tail.value);
    QueueParams p;
    p.id = 1;
    p.sq_entries = p.cq_entries = 8;
    server = std::make_unique<QueueServer>(p, std::move(*m), nullptr,
                                           UniqueFd(eventfd(0, EFD_CLOEXEC)),
                                           UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
                                           regions, backend, counters);
  }
  ~InProcessQueue() {
    server.reset();
    munmap(client, size);
  }
  void* client;
  std::size_t size;
  QueueHeader* hdr;
  SubmissionProducer sq;
  CompletionConsumer cq;
  std::unique_ptr<QueueServer> server;
};

TEST(QueueServerTest, DeviceErrorAndShuttingDownCompletions) {
  FailingBackend backend;
  RegionTable regions(4);
  Counters counters;
  InProcessQueue q(&backend, &regions, &counters);
  Descriptor d{};
  d.opcode = static_cast<std::uint8_t>(Opcode::kCopy);  // validator: unknown region first
  d.user_data = 7;
  ASSERT_EQ(q.sq.Reserve(1), 1u);
  q.sq.Slot(0) = d;
  q.sq.Commit(1);
  EXPECT_EQ(q.server->ServeOnce(), 1u);
  ASSERT_EQ(q.cq.Peek(1), 1u);
  EXPECT_EQ(q.cq.Slot(0).status, static_cast<int>(CompletionStatus::kUnknownRegion));
  q.cq.Release(1);

  // A valid op the backend fails: kDeviceError.
  auto r = std::make_unique<Region>();
  r->size = 64;
  auto h = regions.Insert(std::move(r));
  ASSERT_TRUE(h.ok());
  d.opcode = static_cast<std::uint8_t>(Opcode::kChecksum);
  d.src_region = *h;
  d.length = 64;
  ASSERT_EQ(q.sq.Reserve(1), 1u);
  q.sq.Slot(0) = d;
  q.sq.Commit(1);
  EXPECT_EQ(q.server->ServeOnce(), 1u);
  ASSERT_EQ(q.cq.Peek(1), 1u);
  EXPECT_EQ(q.cq.Slot(0).status, static_cast<int>(CompletionStatus::kDeviceError));
  EXPECT_EQ(q.cq.Slot(0).user_data, 7u);
  q.cq.Release(1);

  // Pending at shutdown: kShuttingDown, then queue_error = kDaemonStopping.
  ASSERT_EQ(q.sq.Reserve(2), 2u);
  q.sq.Slot(0) = d;
  q.sq.Slot(1) = d;
  q.sq.Commit(2);
  q.server->Stop(QueueError::kDaemonStopping);
  ASSERT_EQ(q.cq.Peek(2), 2u);
  EXPECT_EQ(q.cq.Slot(0).status, static_cast<int>(CompletionStatus::kShuttingDown));
  EXPECT_EQ(q.cq.Slot(1).status, static_cast<int>(CompletionStatus::kShuttingDown));
  EXPECT_EQ(q.hdr->queue_error.value.load(),
            static_cast<std::uint32_t>(QueueError::kDaemonStopping));
}

// Records the batches QueueServer hands to the backend, then runs them on the cpu backend.
class RecordingBackend final : public Backend {
 public:
  absl::string_view name() const override { return "recording"; }
  std::string device() const override { return ""; }
  std::uint64_t default_serve_budget() const override { return 8192; }
  absl::StatusOr<std::unique_ptr<BackendMemory>> Register(void* a, std::size_t n, ForkMode w) override {
    return cpu_->Register(a, n, w);
  }
  OpResult Execute(const ValidatedOp& op) override { return cpu_->Execute(op); }
  void ExecuteBatch(absl::Span<const ValidatedOp> ops, absl::Span<OpResult> out) override {
    std::vector<std::uint64_t> ids;
    for (const ValidatedOp& op : ops) ids.push_back(op.desc.user_data);
    batches.push_back(ids);
    cpu_->ExecuteBatch(ops, out);
  }
  std::vector<std::vector<std::uint64_t>> batches;

 private:
  std::unique_ptr<Backend> cpu_ = MakeCpuBackend();
};

// kDescFlagFence: the fenced descriptor starts only after the earlier ones finished, so it never
// shares a backend batch with them (issue 11, item 9).
// A 64-byte region over static memory (contents never checked), for ops that must reach the
// backend.
absl::StatusOr<std::uint32_t> InsertSmallRegion(RegionTable& regions) {
  alignas(64) static std::byte bytes[64] = {};
  auto r = std::make_unique<Region>();
  r->size = sizeof bytes;
  r->base = bytes;
  return regions.Insert(std::move(r));
}

TEST(QueueServerTest, FenceEndsTheBackendBatch) {
  RecordingBackend backend;
  RegionTable regions(4);
  Counters counters;
  InProcessQueue q(&backend, &regions, &counters);
  // CHECKSUMs reach the backend (fast-path NOPs would not).
  auto h = InsertSmallRegion(regions);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(q.sq.Reserve(4), 4u);
  for (std::uint32_t i = 0; i < 4; ++i) {
    Descriptor d = MakeChecksum(*h, 0, 64, i + 1);
    if (i == 2) d.flags = kDescFlagFence;
    q.sq.Slot(i) = d;
  }
  q.sq.Commit(4);
  EXPECT_EQ(q.server->ServeOnce(), 4u);
  ASSERT_EQ(backend.batches.size(), 2u);
  EXPECT_EQ(backend.batches[0], (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(backend.batches[1], (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(counters.Snapshot().fences, 1u);
}

// The NOP fast path: a batch of valid NOPs never reaches the backend and completes ok, in order,
// counted as NOPs; a NOP among other ops rides in their batch; a NOP with a reserved field set
// is refused exactly as the full validator refuses it.
TEST(QueueServerTest, NopFastPathSkipsTheBackendButNotTheChecks) {
  RecordingBackend backend;
  RegionTable regions(4);
  Counters counters;
  InProcessQueue q(&backend, &regions, &counters);
  ASSERT_EQ(q.sq.Reserve(3), 3u);
  for (std::uint32_t i = 0; i < 3; ++i) q.sq.Slot(i) = MakeNop(i + 1);
  q.sq.Commit(3);
  EXPECT_EQ(q.server->ServeOnce(), 3u);
  EXPECT_TRUE(backend.batches.empty());
  ASSERT_EQ(q.cq.Peek(3), 3u);
  for (std::uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(q.cq.Slot(i).user_data, i + 1);
    EXPECT_EQ(q.cq.Slot(i).status, static_cast<int>(CompletionStatus::kOk));
    EXPECT_EQ(q.cq.Slot(i).result, 0u);
  }
  q.cq.Release(3);
  EXPECT_EQ(counters.Snapshot().ops[static_cast<int>(Opcode::kNop)], 3u);
  EXPECT_EQ(counters.Snapshot().completions[static_cast<int>(CompletionStatus::kOk)], 3u);

  auto h = InsertSmallRegion(regions);
  ASSERT_TRUE(h.ok());
  Descriptor bad = MakeNop(13);
  bad.reserved2 = 1;
  ASSERT_EQ(q.sq.Reserve(4), 4u);
  q.sq.Slot(0) = MakeNop(10);
  q.sq.Slot(1) = MakeChecksum(*h, 0, 64, 11);
  q.sq.Slot(2) = MakeNop(12);
  q.sq.Slot(3) = bad;
  q.sq.Commit(4);
  EXPECT_EQ(q.server->ServeOnce(), 4u);
  ASSERT_EQ(backend.batches.size(), 1u);
  EXPECT_EQ(backend.batches[0], (std::vector<std::uint64_t>{10, 11, 12, 13}));
  ASSERT_EQ(q.cq.Peek(4), 4u);
  EXPECT_EQ(q.cq.Slot(0).status, static_cast<int>(CompletionStatus::kOk));
  EXPECT_EQ(q.cq.Slot(2).status, static_cast<int>(CompletionStatus::kOk));
  EXPECT_EQ(q.cq.Slot(3).user_data, 13u);
  EXPECT_EQ(q.cq.Slot(3).status, static_cast<int>(CompletionStatus::kBadReserved));
  q.cq.Release(4);

  // A NOP's length moves nothing, on the fast path or not (a fenced NOP takes the full path):
  // a client cannot inflate bytes_moved with it.
  Descriptor fenced = MakeNop(14);
  fenced.flags = kDescFlagFence;
  fenced.length = 1ull << 40;
  Descriptor plain = MakeNop(15);
  plain.length = 1ull << 40;
  ASSERT_EQ(q.sq.Reserve(2), 2u);
  q.sq.Slot(0) = fenced;
  q.sq.Slot(1) = plain;
  q.sq.Commit(2);
  EXPECT_EQ(q.server->ServeOnce(), 2u);
  ASSERT_EQ(q.cq.Peek(2), 2u);
  EXPECT_EQ(q.cq.Slot(0).status, static_cast<int>(CompletionStatus::kOk));
  EXPECT_EQ(q.cq.Slot(1).status, static_cast<int>(CompletionStatus::kOk));
  EXPECT_EQ(counters.Snapshot().bytes_moved, 0u);
}

// A descriptor larger than the pass budget advances one slice per ServeOnce and completes with
// the same result as in one piece (issue 11, item 3: tenants interleave at the budget).
TEST(QueueServerTest, LargeDescriptorRunsInSlicesWithTheSameResult) {
  auto backend = MakeCpuBackend();
  RegionTable regions(4);
  Counters counters;
  constexpr std::size_t kSize = 1 << 20;
  UniqueFd fd(Memfd(kSize, true));
  auto m = MapUntrustedMemfd(fd.get(), kSize, SizeRule::kAtLeast, PROT_READ | PROT_WRITE, "r");
  ASSERT_TRUE(m.ok()) << m.status();
  for (std::size_t i = 0; i < kSize; ++i) m->bytes()[i] = static_cast<std::byte>(i * 7 + 3);
  const std::uint64_t expect = Fnv1a64(std::span<const std::byte>(m->bytes(), kSize));
  auto r = std::make_unique<Region>();
  r->size = kSize;
  r->mapping = std::move(*m);
  r->base = r->mapping.bytes();
  auto h = regions.Insert(std::move(r));
  ASSERT_TRUE(h.ok());
  InProcessQueue q(backend.get(), &regions, &counters);  // budget: QueueParams' default 16 KiB
  Descriptor d{};
  d.opcode = static_cast<std::uint8_t>(Opcode::kChecksum);
  d.src_region = *h;
  d.length = kSize;
  d.user_data = 9;
  ASSERT_EQ(q.sq.Reserve(1), 1u);
  q.sq.Slot(0) = d;
  q.sq.Commit(1);
  int passes = 0;
  while (q.server->ServeOnce() == 0 && passes < 100000) {
    ++passes;
    ASSERT_TRUE(q.server->busy()) << "stopped making progress after " << passes << " passes";
  }
  // 1 MiB of CHECKSUM at 8 KiB / 32 per pass: 4096 slices.
  EXPECT_GT(passes, 100);
  ASSERT_EQ(q.cq.Peek(1), 1u);
  EXPECT_EQ(q.cq.Slot(0).status, 0);
  EXPECT_EQ(q.cq.Slot(0).result, expect);
  EXPECT_EQ(q.cq.Slot(0).user_data, 9u);
}

TEST(QueueServerTest, CorruptIndicesStopTheQueue) {
  auto backend = MakeCpuBackend();
  RegionTable regions(4);
  Counters counters;
  {
    InProcessQueue q(backend.get(), &regions, &counters);
    q.hdr->sq_tail.value.store(1000);  // more than a ring ahead of ringd's head
    EXPECT_EQ(q.server->ServeOnce(), 0u);
    EXPECT_TRUE(q.server->stopped());
    EXPECT_EQ(q.hdr->queue_error.value.load(), static_cast<std::uint32_t>(QueueError::kSqIndexCorrupt));
    EXPECT_EQ(q.server->ServeOnce(), 0u) << "stays stopped";
  }
  {
    InProcessQueue q(backend.get(), &regions, &counters);
    q.hdr->sq_tail.value.store(8);  // eight zeroed slots = eight NOPs; fills the CQ
    EXPECT_EQ(q.server->ServeOnce(), 8u);
    q.hdr->cq_head.value.store(77);  // "consumed" completions ringd never produced
    q.hdr->sq_tail.value.store(9);
    EXPECT_EQ(q.server->ServeOnce(), 0u);
    EXPECT_EQ(q.hdr->queue_error.value.load(), static_cast<std::uint32_t>(QueueError::kCqIndexCorrupt));
  }
  EXPECT_EQ(counters.Snapshot().queue_errors, 2u);
}

}  // namespace
}  // namespace pinring::ringd
