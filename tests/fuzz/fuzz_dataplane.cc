// Fuzz target: ringd's data plane. A queue and regions are real memfds; every region is mapped
// with PROT_NONE guard pages on both sides, so any access outside a region faults (a crash the
// fuzzer reports). The input is a script of hostile client actions, interleaved with ringd's real
// serving code (QueueServer::ServeOnce on the cpu backend):
//
//   0  write a descriptor into an SQ slot (64 bytes of input, opcode/handles folded in range so
//      that most descriptors are plausible)
//   1  publish an sq_tail (any value: indices are hostile)
//   2  reap: advance cq_head as a well-behaved client would
//   3  scribble cq_head (any value)
//   4  scribble the flag words (sq_flags, cq_flags, queue_error)
//   5  ServeOnce
//
// Invariants checked after every ServeOnce:
//   - completions appear in submission order and name the descriptor ringd first read from that
//     slot (user_data);
//   - every status is legal for the descriptor's opcode, and an ok result is the right one
//     (CHECKSUM equals FNV-1a of the source range as it is now);
//   - a corrupt index latches queue_error for good: no completion is published afterwards.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <span>

#include "pinring/ring_format.h"
#include "pinring/spsc_ring.h"
#include "service/backend.h"
#include "service/counters.h"
#include "service/descriptor_validator.h"
#include "service/queue_server.h"
#include "service/region_table.h"
#include "service/untrusted_memfd.h"

namespace pinring::ringd {
namespace {

constexpr std::uint32_t kEntries = 8;
constexpr std::size_t kRegionSize = 16 * 1024;
constexpr std::size_t kPage = 4096;

#define FUZZ_CHECK(cond, ...)                                            \
  do {                                                                   \
    if (!(cond)) {                                                       \
      std::fprintf(stderr, "invariant broken: %s: ", #cond);             \
      std::fprintf(stderr, __VA_ARGS__);                                 \
      std::fprintf(stderr, "\n");                                        \
      std::abort();                                                      \
    }                                                                    \
  } while (0)

int MakeMemfd(std::size_t size) {
  const int fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) {
    std::abort();
  }
  return fd;
}

// A region mapped between two PROT_NONE guard pages, registered in `table`.
struct GuardedRegion {
  GuardedRegion(int memfd, RegionTable& table) {
    reservation = static_cast<std::byte*>(mmap(nullptr, kRegionSize + 2 * kPage, PROT_NONE,
                                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (reservation == MAP_FAILED) std::abort();
    void* p = mmap(reservation + kPage, kRegionSize, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_FIXED, memfd, 0);
    if (p == MAP_FAILED) std::abort();
    struct stat st {};
    fstat(memfd, &st);
    auto r = std::make_unique<Region>();
    r->size = kRegionSize;
    auto guard = FaultGuard::Watch(p, kRegionSize, kPage);
    if (!guard.ok()) std::abort();
    r->mapping = ClientMapping(Mapping(p, kRegionSize), BackingId{st.st_dev, st.st_ino}, kPage,
                               std::move(*guard));
    r->base = r->mapping.bytes();
    region = r.get();
    handle = *table.Insert(std::move(r));
  }
  std::byte* reservation = nullptr;
  const Region* region = nullptr;
  std::uint32_t handle = 0;
};

// Process-wide fixtures: regions are made once (mapping is the slow part), their contents are
// reset per input.
struct World {
  World() : regions(8) {
    backend = MakeCpuBackend();
    const int a = MakeMemfd(kRegionSize), b = MakeMemfd(kRegionSize);
    r[0] = std::make_unique<GuardedRegion>(a, regions);
    r[1] = std::make_unique<GuardedRegion>(b, regions);
    r[2] = std::make_unique<GuardedRegion>(a, regions);  // an alias of r[0]: same memfd
    close(a);
    close(b);
  }
  std::unique_ptr<Backend> backend;
  RegionTable regions;
  std::unique_ptr<GuardedRegion> r[3];
};

World& TheWorld() {
  static World* w = new World();
  return *w;
}

bool LegalStatus(const Descriptor& d, CompletionStatus s) {
  if (d.opcode >= kOpcodeCount) return s == CompletionStatus::kBadOpcode;
  switch (s) {
    case CompletionStatus::kOk:
    case CompletionStatus::kBadReserved:
    case CompletionStatus::kBadFlags:
      return true;
    case CompletionStatus::kUnknownRegion:
    case CompletionStatus::kOutOfBounds:
      return d.opcode != static_cast<std::uint8_t>(Opcode::kNop);
    case CompletionStatus::kMisaligned:
      return d.opcode == static_cast<std::uint8_t>(Opcode::kFill);
    case CompletionStatus::kReadOnlyRegion:
      return false;  // every fuzz region is writable
    case CompletionStatus::kOverlap:
      return d.opcode == static_cast<std::uint8_t>(Opcode::kCopy);
    default:
      return false;  // no device, no shutdown, no fault here
  }
}

struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  bool Take(void* out, std::size_t k) {
    if (n < k) return false;
    std::memcpy(out, p, k);
    p += k;
    n -= k;
    return true;
  }
  std::uint8_t Byte() {
    std::uint8_t b = 0;
    Take(&b, 1);
    return b;
  }
};

}  // namespace
}  // namespace pinring::ringd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pinring;
  using namespace pinring::ringd;
  World& w = TheWorld();
  for (auto& g : w.r) std::memset(g->region->base, 0x11, kRegionSize);

  const QueueLayout l = ComputeQueueLayout(kEntries, kEntries);
  const int qfd = MakeMemfd(l.total_size);
  auto m = MapUntrustedMemfd(qfd, l.total_size, SizeRule::kExact, PROT_READ | PROT_WRITE, "q");
  if (!m.ok()) std::abort();
  auto* client = static_cast<std::byte*>(
      mmap(nullptr, l.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, qfd, 0));
  close(qfd);
  auto* hdr = reinterpret_cast<QueueHeader*>(client);
  auto* sq = reinterpret_cast<Descriptor*>(client + l.sq_offset);
  auto* cq = reinterpret_cast<Completion*>(client + l.cq_offset);
  Counters counters;
  QueueParams p;
  p.id = 1;
  p.sq_entries = p.cq_entries = kEntries;
  p.budget_bytes = 4096;
  auto server = std::make_unique<QueueServer>(
      p, std::move(*m), nullptr, UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), &w.regions, w.backend.get(), &counters);

  // The shadow: what ringd first read at each absolute SQ index, and how many completions the
  // client has seen.
  std::map<std::uint32_t, Descriptor> first_seen;
  std::uint32_t reaped = 0;      // completions the harness consumed (its cq_head when honest)
  std::uint32_t published = 0;   // ringd's cq_tail as last seen
  bool latched = false;
  Reader in{data, size};
  for (int step = 0; step < 64 && in.n > 0; ++step) {
    const std::uint8_t action = in.Byte() % 6;
    switch (action) {
      case 0: {
        const std::uint32_t slot = in.Byte() % kEntries;
        Descriptor d{};
        if (!in.Take(&d, sizeof d)) break;
        // Fold the usual fields into range most of the time, so validation is passed often.
        if ((d.reserved1 & 0x80) == 0) {
          d.opcode %= 5;  // 4 = a bad opcode
          d.src_region = d.src_region % 5;
          d.dst_region = d.dst_region % 5;
          d.src_offset %= kRegionSize + 64;
          d.dst_offset %= kRegionSize + 64;
          d.length %= kRegionSize + 64;
          d.reserved0 = d.reserved1 = 0;
          d.reserved2 = 0;
          d.flags &= 0x7;
        }
        sq[slot] = d;
        break;
      }
      case 1: {
        std::uint32_t t = 0;
        in.Take(&t, 1);  // mostly small steps
        const std::uint32_t head = hdr->sq_head.value.load(std::memory_order_relaxed);
        hdr->sq_tail.value.store((t & 0x80) ? head + (t & 0x7f) : head + (t % (kEntries + 1)),
                                 std::memory_order_release);
        break;
      }
      case 2: {
        const std::uint32_t tail = hdr->cq_tail.value.load(std::memory_order_acquire);
        reaped = tail;
        hdr->cq_head.value.store(tail, std::memory_order_release);
        break;
      }
      case 3: {
        std::uint32_t h = 0;
        in.Take(&h, sizeof h);
        hdr->cq_head.value.store(h, std::memory_order_release);
        break;
      }
      case 4: {
        std::uint32_t v = 0;
        in.Take(&v, sizeof v);
        hdr->sq_flags.value.store(v, std::memory_order_relaxed);
        hdr->cq_flags.value.store(v >> 8, std::memory_order_relaxed);
        hdr->queue_error.value.store(v >> 16, std::memory_order_relaxed);
        break;
      }
      case 5: {
        const std::uint32_t head_before = server->stopped() ? 0 : hdr->sq_head.value.load();
        const std::uint32_t tail_now = hdr->sq_tail.value.load();
        // Snapshot the slots ringd may read now (it copies each once).
        Descriptor snap[kEntries];
        std::memcpy(snap, sq, sizeof snap);
        const bool was_busy = server->busy();
        const std::uint32_t n = server->ServeOnce();
        if (latched) {
          FUZZ_CHECK(n == 0, "a stopped queue completed %u descriptors", n);
          break;
        }
        if (server->stopped()) {
          latched = true;
          const auto err = static_cast<QueueError>(server->error());
          FUZZ_CHECK(err == QueueError::kSqIndexCorrupt || err == QueueError::kCqIndexCorrupt,
                     "stopped with queue_error %u", static_cast<unsigned>(err));
          FUZZ_CHECK(hdr->queue_error.value.load() == static_cast<std::uint32_t>(err),
                     "queue_error not published");
          break;
        }
        // Slots ringd read for the first time in this pass.
        const std::uint32_t read_end = head_before + n + (server->busy() ? 1 : 0);
        for (std::uint32_t k = head_before; k < read_end && k - head_before < kEntries; ++k) {
          if (k == head_before && was_busy) continue;  // read in an earlier pass
          if (first_seen.count(k) == 0) first_seen[k] = snap[k % kEntries];
        }
        (void)tail_now;
        const std::uint32_t tail = hdr->cq_tail.value.load(std::memory_order_acquire);
        FUZZ_CHECK(tail - published == n, "cq_tail moved by %u, ServeOnce said %u",
                   tail - published, n);
        for (std::uint32_t k = 0; k < n; ++k) {
          const std::uint32_t abs = head_before + k;
          const Completion c = cq[(published + k) % kEntries];
          const Descriptor& d = first_seen[abs];
          FUZZ_CHECK(c.user_data == d.user_data, "completion %u names %llu, descriptor %llu",
                     abs, static_cast<unsigned long long>(c.user_data),
                     static_cast<unsigned long long>(d.user_data));
          const auto st = static_cast<CompletionStatus>(c.status);
          FUZZ_CHECK(LegalStatus(d, st), "status %d illegal for opcode %u", c.status, d.opcode);
          // The validator's verdict is the status whenever it rejects (the NOP fast path in
          // ServeOnce must never accept what the full validator refuses), and a NOP it accepts
          // completes ok with result 0.
          CompletionStatus verdict;
          {
            absl::ReaderMutexLock l(&w.regions.mu());
            verdict = ValidateShmDescriptor(d, [&](std::uint32_t h) {
                        w.regions.mu().AssertReaderHeld();
                        return w.regions.FindLocked(h);
                      }).status;
          }
          FUZZ_CHECK(verdict == CompletionStatus::kOk || st == verdict,
                     "status %d, the validator says %d", c.status, static_cast<int>(verdict));
          FUZZ_CHECK(!IsValidNop(d) || verdict == CompletionStatus::kOk,
                     "fast-path NOP the validator rejects (%d)", static_cast<int>(verdict));
          if (verdict == CompletionStatus::kOk && d.opcode == 0) {
            FUZZ_CHECK(st == CompletionStatus::kOk && c.result == 0,
                       "NOP completed %d result %llu", c.status,
                       static_cast<unsigned long long>(c.result));
          }
          if (st == CompletionStatus::kOk && d.opcode == static_cast<std::uint8_t>(Opcode::kChecksum) &&
              d.src_region >= 1 && d.src_region <= 3) {
            // The regions are only changed by ringd's own ops; recompute the checksum only when
            // it is the last op of the pass and no later descriptor began its first slice in the
            // same pass (either may have rewritten the bytes since).
            if (k + 1 == n && !server->busy()) {
              const Region* r = w.r[d.src_region - 1]->region;
              const std::uint64_t expect =
                  Fnv1a64(std::span<const std::byte>(r->base + d.src_offset, d.length));
              FUZZ_CHECK(c.result == expect, "CHECKSUM result wrong");
            }
          }
          first_seen.erase(abs);
        }
        published = tail;
        break;
      }
    }
  }
  (void)reaped;
  // ringd's shutdown: descriptors still submitted are answered kShuttingDown, not executed.
  if (!latched) {
    const std::uint32_t before = hdr->cq_tail.value.load(std::memory_order_acquire);
    server->Stop(QueueError::kDaemonStopping);
    const std::uint32_t after = hdr->cq_tail.value.load(std::memory_order_acquire);
    FUZZ_CHECK(after - before <= kEntries, "shutdown moved cq_tail by %u", after - before);
    for (std::uint32_t k = before; k != after; ++k) {
      const std::int32_t st = cq[k % kEntries].status;
      FUZZ_CHECK(st == static_cast<std::int32_t>(CompletionStatus::kShuttingDown),
                 "shutdown answered a descriptor with status %d, not shutting-down", st);
    }
    FUZZ_CHECK(server->stopped(), "Stop left the queue running");
  }
  server.reset();
  munmap(client, l.total_size);
  return 0;
}
