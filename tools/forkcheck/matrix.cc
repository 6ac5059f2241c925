#include "matrix.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "verbs/fork_safety.h"
#include "verbs/private_region.h"

namespace pinring::forkcheck {
namespace {

constexpr std::uint8_t kOld = 0xA1;    // parent's data before the event
constexpr std::uint8_t kNew = 0xB2;    // parent's data after the event
constexpr std::uint8_t kChild = 0xC3;  // the child's data
constexpr std::size_t kHugeBytes = 4u << 20;

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A forked child that runs `body` (async-signal-safe work only: stores, memset, read/write on
// pipes) and then _exit(0)s. The parent controls it through two pipes.
class Child {
 public:
  // go_after_body: the child reports "body done" on a pipe, then waits for Release() to exit.
  template <typename Body>
  bool Start(Body body, bool stay_alive) {
    if (pipe2(done_, O_CLOEXEC) != 0 || pipe2(hold_, O_CLOEXEC) != 0) return false;
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      close(done_[0]);
      close(hold_[1]);
      // The default SIGSEGV/SIGBUS action, so a child touching a dontfork range is reported as
      // killed by the signal even when a sanitizer installed its own handler.
      signal(SIGSEGV, SIG_DFL);
      signal(SIGBUS, SIG_DFL);
      body();
      char c = 1;
      (void)!write(done_[1], &c, 1);
      if (stay_alive) (void)!read(hold_[0], &c, 1);
      _exit(0);
    }
    close(done_[1]);
    close(hold_[0]);
    done_[1] = hold_[0] = -1;
    return true;
  }
  // Waits until the body ran (or the child died trying).
  void WaitBody() {
    char c;
    while (read(done_[0], &c, 1) < 0 && errno == EINTR) {
    }
  }
  // Lets the child exit and reaps it. Returns the signal that killed it, 0 if none.
  int Finish() {
    if (pid_ <= 0) return 0;
    close(hold_[1]);
    hold_[1] = -1;
    int ws = 0;
    while (waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
  }
  pid_t pid() const { return pid_; }
  ~Child() {
    Finish();
    for (int fd : {done_[0], done_[1], hold_[0], hold_[1]}) {
      if (fd >= 0) close(fd);
    }
  }

 private:
  pid_t pid_ = -1;
  int done_[2] = {-1, -1};
  int hold_[2] = {-1, -1};
};

// Bytes of huge pages mapped in [addr, addr+len): AnonHugePages + ShmemPmdMapped + hugetlb from
// /proc/self/smaps for the VMAs overlapping the range.
std::size_t HugeBytesIn(void* addr, std::size_t len) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  bool in_range = false;
  std::size_t kib = 0;
  while (std::getline(in, line)) {
    unsigned long b = 0, e = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &b, &e) == 2 && line.find(':') > 8) {
      in_range = b < a + len && e > a;
      continue;
    }
    if (!in_range) continue;
    for (const char* key : {"AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:",
                            "Private_Hugetlb:", "Shared_Hugetlb:"}) {
      if (line.rfind(key, 0) == 0)
        kib += std::strtoul(line.c_str() + std::strlen(key), nullptr, 10);
    }
  }
  return kib << 10;
}

std::string ReadFileTrim(const char* path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

struct Region {
  MappedMemory mem;
  int file_fd = -1;  // file-* scenarios: the (unlinked) file behind the mapping
  bool safety = false;
  ForkMode mode{};
  void* safety_addr = nullptr;
  std::size_t safety_len = 0;
  std::unique_ptr<Pin> pin;
  ~Region() {
    pin.reset();  // unpin before the madvise state goes and before munmap
    if (safety) internal::ReleaseForkSafety(safety_addr, safety_len, mode);
    mem = MappedMemory();  // munmap before the file goes
    if (file_fd >= 0) close(file_fd);
  }
};

bool IsFileScenario(Scenario s) {
  return s == Scenario::kFileSharedDisk || s == Scenario::kFileSharedTmpfs ||
         s == Scenario::kFilePrivatePwrite;
}

// The file-* scenarios' memory: an unlinked file of `len` bytes of kOld in `dir`, mapped
// MAP_SHARED or MAP_PRIVATE. `want_tmpfs` says which kind of filesystem the scenario is about;
// a directory on the other kind is the environment's problem, reported as a skip reason.
absl::Status MapFile(const std::string& dir, bool want_tmpfs, bool shared, std::size_t len,
                     Region* region, std::string* fs_note) {
  if (dir.empty()) {
    return absl::FailedPreconditionError(
        "environment: no --file_dir (a directory on a disk filesystem such as ext4)");
  }
  struct statfs sf {};
  if (statfs(dir.c_str(), &sf) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("environment: statfs(", dir, "): ", std::strerror(errno)));
  }
  constexpr long kTmpfsMagic = 0x01021994, kExt4Magic = 0xEF53, kXfsMagic = 0x58465342,
                 kBtrfsMagic = 0x9123683E;
  const long type = static_cast<long>(sf.f_type);
  const bool tmpfs = type == kTmpfsMagic;
  const bool disk = type == kExt4Magic || type == kXfsMagic || type == kBtrfsMagic;
  *fs_note = tmpfs ? "tmpfs" : type == kExt4Magic ? "ext4" : type == kXfsMagic ? "xfs"
                   : type == kBtrfsMagic ? "btrfs" : absl::StrCat("fs 0x", absl::Hex(type));
  if (want_tmpfs ? !tmpfs : !disk) {
    return absl::FailedPreconditionError(absl::StrCat(
        "environment: ", dir, " is on ", *fs_note, ", not ",
        want_tmpfs ? "tmpfs (--tmpfs_dir)" : "a disk filesystem: ext4, xfs or btrfs (--file_dir)"));
  }
  std::string path = dir + "/pinring-forkcheck-XXXXXX";
  const int fd = mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("environment: mkostemp in ", dir, ": ", std::strerror(errno)));
  }
  unlink(path.c_str());
  region->file_fd = fd;
  std::vector<std::uint8_t> old(len, kOld);
  if (pwrite(fd, old.data(), len, 0) != static_cast<ssize_t>(len)) {
    return absl::FailedPreconditionError(
        absl::StrCat("environment: pwrite to ", dir, ": ", std::strerror(errno)));
  }
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    return absl::FailedPreconditionError(
        absl::StrCat("environment: mmap of a file in ", dir, ": ", std::strerror(errno)));
  }
  region->mem.Adopt(p, len);
  // Read every page, so the mapping holds the page cache pages before the registration.
  volatile std::uint8_t sink = 0;
  for (std::size_t off = 0; off < len; off += 4096) sink = sink + static_cast<std::uint8_t*>(p)[off];
  return absl::OkStatus();
}

}  // namespace

int CountMapsLines() {
  std::ifstream in("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) ++n;
  return n;
}

CellResult RunCell(PinBackend& backend, Scenario s, ForkMode m, const KernelFacts& k,
                   const RunOptions& opts) {
  CellResult r;
  r.backend = backend.name();
  r.scenario = s;
  r.mode = m;
  const double t0 = NowMs();
  auto finish = [&]() -> CellResult {
    r.outcome = Classify(r.obs);
    r.judgement = Judge(s, m, k, r.outcome, r.obs);
    r.millis = NowMs() - t0;
    return r;
  };
  if (std::string why = backend.unavailable_reason(); !why.empty()) {
    r.obs.skip_reason = absl::StrCat("backend ", backend.name(), " unavailable: ", why);
    return finish();
  }
  if (std::string why = backend.unsupported_mode_reason(m); !why.empty()) {
    r.obs.skip_reason = why;
    return finish();
  }

  const bool huge = s == Scenario::kThp || s == Scenario::kHugetlb;
  const std::size_t len = huge ? kHugeBytes : opts.buffer_bytes;
  const PageBacking backing = s == Scenario::kThp       ? PageBacking::kThp
                              : s == Scenario::kHugetlb ? PageBacking::kHugetlb
                                                        : PageBacking::kSmall;
  auto region = std::make_unique<Region>();
  region->mode = m;
  if (IsFileScenario(s)) {
    std::string fs;
    const std::string& dir = s == Scenario::kFileSharedTmpfs ? opts.tmpfs_dir : opts.file_dir;
    if (absl::Status st = MapFile(dir, s == Scenario::kFileSharedTmpfs,
                                  s != Scenario::kFilePrivatePwrite, len, region.get(), &fs);
        !st.ok()) {
      r.obs.skip_reason = std::string(st.message());
      return finish();
    }
    absl::StrAppend(&r.detail, "file on ", fs, "; ");
  } else {
    auto mem = MapForkModeMemory(len, m, backing, /*prefault=*/s != Scenario::kZeroPagePin);
    if (!mem.ok()) {
      if (s == Scenario::kHugetlb) {
        r.obs.skip_reason =
            absl::StrCat("no hugetlb memory: ", std::string(mem.status().message()),
                         " (vm.nr_hugepages=", ReadFileTrim("/proc/sys/vm/nr_hugepages"), ")");
      } else {
        r.obs.skip_reason = absl::StrCat("environment: ", std::string(mem.status().message()));
      }
      return finish();
    }
    region->mem = *std::move(mem);
  }
  auto* p = static_cast<std::uint8_t*>(region->mem.data());
  // (File scenarios hold kOld in the file already; a store would COW a MAP_PRIVATE page.)
  if (s != Scenario::kZeroPagePin && !IsFileScenario(s)) std::memset(p, kOld, len);
  if (s == Scenario::kThp) {
    const std::size_t hb = HugeBytesIn(p, len);
    if (hb == 0) {
      r.obs.skip_reason = absl::StrCat(
          "environment: region not THP-backed after MADV_HUGEPAGE (thp enabled=",
          ReadFileTrim("/sys/kernel/mm/transparent_hugepage/enabled"),
          ", shmem_enabled=", ReadFileTrim("/sys/kernel/mm/transparent_hugepage/shmem_enabled"),
          ")");
      return finish();
    }
    absl::StrAppend(&r.detail, "huge-mapped ", hb >> 10, " KiB of ", len >> 10, " KiB; ");
  }
  if (absl::Status st = internal::ApplyForkSafety(p, len, m); !st.ok()) {
    r.obs.pin_errno = EINVAL;
    absl::StrAppend(&r.detail, "ApplyForkSafety: ", std::string(st.message()));
    return finish();
  }
  region->safety = true;
  region->safety_addr = p;
  region->safety_len = len;
  int child_signal = 0;
  if (s == Scenario::kPinAfterSharedFork) {
    // The pages are shared with a child (write-protected in both) until it exits; the pin comes
    // after, on a page the parent maps read-only and does not yet own exclusively.
    Child c;
    if (!c.Start([] {}, false)) return (r.obs.skip_reason = "fork failed", finish());
    child_signal = c.Finish();
  }
  if (s == Scenario::kProtReadPin && mprotect(p, len, PROT_READ) != 0) {
    r.obs.skip_reason = absl::StrCat("mprotect(PROT_READ): ", std::strerror(errno));
    return finish();
  }
  {
    auto pin = backend.PinRange(p, len, m);
    if (!pin.ok()) {
      r.obs.pin_errno = backend.last_errno() != 0 ? backend.last_errno() : EIO;
      r.obs.pin_refused = IsRefusalErrno(r.obs.pin_errno);
      absl::StrAppend(&r.detail, std::string(pin.status().message()));
      return finish();
    }
    region->pin = *std::move(pin);
  }

  std::vector<std::uint8_t> expected(len, kNew);
  switch (s) {
    case Scenario::kZeroPagePin:
      std::memset(p, kNew, len);
      break;
    case Scenario::kParentWriteChildAlive: {
      Child c;
      if (!c.Start([] {}, /*stay_alive=*/true))
        return (r.obs.skip_reason = "fork failed", finish());
      c.WaitBody();
      std::memset(p, kNew, len);
      Observation tmp;
      std::vector<std::uint8_t> view(len);
      if (absl::Status st = region->pin->DeviceRead(view.data(), len); !st.ok()) {
        r.obs.device_fault = true;
        absl::StrAppend(&r.detail, "device read: ", std::string(st.message()));
        return finish();
      }
      child_signal = c.Finish();
      CountBytes(view.data(), expected.data(), len, kChild, &r.obs);
      r.obs.child_signal = child_signal;
      absl::StrAppend(&r.detail, "bytes expected/child/old ", r.obs.bytes_expected, "/",
                      r.obs.bytes_child, "/", r.obs.bytes_old);
      return finish();
    }
    case Scenario::kPinAfterSharedFork:
      std::memset(p, kNew, len);  // the parent's write after the pin: COW must not move it
      break;
    case Scenario::kProtReadPin:
      std::fill(expected.begin(), expected.end(), kOld);  // nobody can write now
      break;
    case Scenario::kFileSharedDisk:
    case Scenario::kFileSharedTmpfs:
      std::memset(p, kNew, len);  // through the shared mapping: the page cache page
      break;
    case Scenario::kFilePrivatePwrite: {
      // The file changes under the private mapping; `expected` is the file's new data.
      std::vector<std::uint8_t> now(len, kNew);
      if (pwrite(region->file_fd, now.data(), len, 0) != static_cast<ssize_t>(len)) {
        r.obs.skip_reason = absl::StrCat("environment: pwrite: ", std::strerror(errno));
        return finish();
      }
      const bool cpu_sees_new = p[0] == kNew;
      absl::StrAppend(&r.detail, "the mapping now reads ", cpu_sees_new ? "the new" : "the old",
                      " file data; ");
      break;
    }
    case Scenario::kParentWriteChildExited: {
      Child c;
      if (!c.Start([] {}, false)) return (r.obs.skip_reason = "fork failed", finish());
      child_signal = c.Finish();
      std::memset(p, kNew, len);
      break;
    }
    case Scenario::kChildWrite: {
      Child c;
      if (!c.Start([p, len] { std::memset(p, kChild, len); }, false)) {
        return (r.obs.skip_reason = "fork failed", finish());
      }
      child_signal = c.Finish();
      std::fill(expected.begin(), expected.end(), kOld);
      break;
    }
    case Scenario::kChildTouch: {
      Child c;
      if (!c.Start(
              [p, len] {
                volatile std::uint8_t sink = 0;
                for (std::size_t i = 0; i < len; i += 4096) sink = sink + p[i];
              },
              false)) {
        return (r.obs.skip_reason = "fork failed", finish());
      }
      child_signal = c.Finish();
      std::fill(expected.begin(), expected.end(), kOld);
      break;
    }
    case Scenario::kForkConcurrentWriter: {
      std::atomic<bool> stop{false};
      std::thread writer([&] {
        std::uint8_t v = 1;
        while (!stop.load(std::memory_order_relaxed)) {
          for (std::size_t i = 0; i < len; i += 512) p[i] = v;
          v = static_cast<std::uint8_t>(v % 0x7f + 1);  // never one of the patterns
        }
      });
      for (int i = 0; i < opts.concurrent_forks; ++i) {
        Child c;
        if (c.Start([] {}, false)) {
          if (int sig = c.Finish(); sig != 0) child_signal = sig;
        }
      }
      stop = true;
      writer.join();
      std::memset(p, kNew, len);
      absl::StrAppend(&r.detail, opts.concurrent_forks, " forks during writes; ");
      break;
    }
    case Scenario::kDontneed:
      if (madvise(p, len, MADV_DONTNEED) != 0) {
        r.obs.skip_reason = absl::StrCat("madvise(MADV_DONTNEED): ", std::strerror(errno));
        return finish();
      }
      std::memset(p, kNew, len);
      break;
    case Scenario::kMunmapRemap: {
      void* q = MAP_FAILED;
      if (region->mem.memfd() >= 0) {
        munmap(p, len);
        q = mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, region->mem.memfd(), 0);
      } else {
        munmap(p, len);
        q = mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      }
      if (q == MAP_FAILED) {
        region->mem.Release();  // already unmapped
        r.obs.skip_reason = absl::StrCat("mmap(MAP_FIXED): ", std::strerror(errno));
        return finish();
      }
      std::memset(p, kNew, len);
      break;
    }
    case Scenario::kMremap: {
      // Reserve a destination so the move is certain, then move the registered range there.
      void* dst = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      void* q =
          dst == MAP_FAILED ? MAP_FAILED : mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
      if (q == MAP_FAILED) {
        if (dst != MAP_FAILED) munmap(dst, len);
        r.obs.skip_reason = absl::StrCat("mremap: ", std::strerror(errno));
        return finish();
      }
      region->mem.Adopt(q, len);
      p = static_cast<std::uint8_t*>(q);
      Child c;
      if (!c.Start([] {}, true)) return (r.obs.skip_reason = "fork failed", finish());
      c.WaitBody();
      std::memset(p, kNew, len);
      std::vector<std::uint8_t> view(len);
      absl::Status st = region->pin->DeviceRead(view.data(), len);
      r.obs.child_signal = c.Finish();
      if (!st.ok()) {
        r.obs.device_fault = true;
        absl::StrAppend(&r.detail, "device read: ", std::string(st.message()));
        return finish();
      }
      CountBytes(view.data(), expected.data(), len, kChild, &r.obs);
      absl::StrAppend(&r.detail, "bytes expected/child/old ", r.obs.bytes_expected, "/",
                      r.obs.bytes_child, "/", r.obs.bytes_old);
      return finish();
    }
    case Scenario::kThp:
    case Scenario::kHugetlb: {
      const std::size_t half = len / 2;
      Child c;
      if (!c.Start([p, half] { std::memset(p, kChild, half); }, true)) {
        return (r.obs.skip_reason = "fork failed", finish());
      }
      c.WaitBody();  // the child wrote its half (or died trying)
      std::memset(p + half, kNew, len - half);
      std::fill(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(half), kOld);
      std::vector<std::uint8_t> view(len);
      absl::Status st = region->pin->DeviceRead(view.data(), len);
      r.obs.child_signal = c.Finish();
      if (!st.ok()) {
        r.obs.device_fault = true;
        absl::StrAppend(&r.detail, "device read: ", std::string(st.message()));
        return finish();
      }
      CountBytes(view.data(), expected.data(), len, kChild, &r.obs);
      absl::StrAppend(&r.detail, "bytes expected/child/old ", r.obs.bytes_expected, "/",
                      r.obs.bytes_child, "/", r.obs.bytes_old);
      return finish();
    }
  }
  std::vector<std::uint8_t> view(len);
  if (absl::Status st = region->pin->DeviceRead(view.data(), len); !st.ok()) {
    r.obs.device_fault = true;
    absl::StrAppend(&r.detail, "device read: ", std::string(st.message()));
    return finish();
  }
  CountBytes(view.data(), expected.data(), len, kChild, &r.obs);
  r.obs.child_signal = child_signal;
  absl::StrAppend(&r.detail, "bytes expected/child/old ", r.obs.bytes_expected, "/",
                  r.obs.bytes_child, "/", r.obs.bytes_old);
  return finish();
}

namespace {

std::int64_t ChildRssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  std::int64_t kib = 0;
  bool any = false;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) == 0 || line.rfind("RssShmem:", 0) == 0) {
      kib += std::strtoll(line.c_str() + line.find(':') + 1, nullptr, 10);
      any = true;
    }
  }
  return any ? kib : -1;
}

std::int64_t ChildPrivateKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/smaps_rollup"));
  std::string line;
  std::int64_t kib = 0;
  bool any = false;
  while (std::getline(in, line)) {
    if (line.rfind("Private_Clean:", 0) == 0 || line.rfind("Private_Dirty:", 0) == 0) {
      kib += std::strtoll(line.c_str() + line.find(':') + 1, nullptr, 10);
      any = true;
    }
  }
  return any ? kib : -1;
}

}  // namespace

CostSeries RunCosts(PinBackend& backend, const std::string& mode_name,
                    const std::vector<std::size_t>& sizes, int reps) {
  CostSeries series;
  series.backend = backend.name();
  series.mode = mode_name;
  const bool floor = mode_name == "floor";  // nothing mapped or registered at all
  const bool pinned = mode_name != "unpinned" && !floor;
  if (pinned && !ParseForkMode(mode_name)) {
    CostPoint bad;
    bad.error = "unknown mode " + mode_name;
    series.points.push_back(bad);
    return series;
  }
  const ForkMode mode = pinned ? *ParseForkMode(mode_name) : ForkMode::kKernel;
  for (std::size_t bytes : sizes) {
    CostPoint pt;
    pt.bytes = bytes;
    pt.vmas_before = CountMapsLines();
    if (floor) {
      pt.vmas_after = pt.vmas_before;
      MeasureForks(reps, &pt);
      series.points.push_back(pt);
      continue;
    }
    auto region = std::make_unique<Region>();
    region->mode = mode;
    auto mem = MapForkModeMemory(bytes, pinned ? mode : ForkMode::kKernel);
    if (!mem.ok()) {
      pt.error = std::string(mem.status().message());
      series.points.push_back(pt);
      continue;
    }
    region->mem = *std::move(mem);
    std::memset(region->mem.data(), kOld, bytes);
    const double t0 = NowMs();
    if (pinned) {
      if (absl::Status st = internal::ApplyForkSafety(region->mem.data(), bytes, mode); !st.ok()) {
        pt.error = std::string(st.message());
        series.points.push_back(pt);
        continue;
      }
      region->safety = true;
      region->safety_addr = region->mem.data();
      region->safety_len = bytes;
      auto pin = backend.PinRange(region->mem.data(), bytes, mode);
      if (!pin.ok()) {
        pt.error = std::string(pin.status().message());
        series.points.push_back(pt);
        continue;
      }
      region->pin = *std::move(pin);
    }
    pt.register_ms = NowMs() - t0;
    pt.vmas_after = CountMapsLines();
    MeasureForks(reps, &pt);
    series.points.push_back(pt);
  }
  return series;
}

void MeasureForks(int reps, CostPoint* out) {
  CostPoint& pt = *out;
  for (int i = 0; i < reps; ++i) {
    Child c;
    const double f0 = NowMs();
    // The fork() call is what Child::Start times here: the child immediately blocks.
    if (!c.Start([] {}, true)) {
      pt.error = absl::StrCat("fork: ", std::strerror(errno));
      break;
    }
    const double f1 = NowMs();
    pt.fork_samples_us.push_back((f1 - f0) * 1000.0);
    if (i == 0) {
      c.WaitBody();
      pt.child_rss_kib = ChildRssKib(c.pid());
      pt.child_private_kib = ChildPrivateKib(c.pid());
    }
    c.Finish();
  }
  if (!pt.fork_samples_us.empty()) {
    std::vector<double> v = pt.fork_samples_us;
    std::sort(v.begin(), v.end());
    pt.fork_median_us = v[v.size() / 2];
  }
}

}  // namespace pinring::forkcheck
