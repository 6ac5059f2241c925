#include "verdict.h"

#include <signal.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace pinring::forkcheck {

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kCoherent:
      return "coherent";
    case Outcome::kStale:
      return "stale";
    case Outcome::kLeak:
      return "leak";
    case Outcome::kChildSignal:
      return "child-signal";
    case Outcome::kPinFailed:
      return "pin-failed";
    case Outcome::kRefused:
      return "refused";
    case Outcome::kDeviceFault:
      return "device-fault";
    case Outcome::kSkipped:
      return "skipped";
    case Outcome::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::string_view ScenarioName(Scenario s) {
  switch (s) {
    case Scenario::kZeroPagePin:
      return "zero-page-pin";
    case Scenario::kParentWriteChildAlive:
      return "parent-write-child-alive";
    case Scenario::kParentWriteChildExited:
      return "parent-write-child-exited";
    case Scenario::kChildWrite:
      return "child-write";
    case Scenario::kForkConcurrentWriter:
      return "fork-concurrent-writer";
    case Scenario::kDontneed:
      return "dontneed";
    case Scenario::kMunmapRemap:
      return "munmap-remap";
    case Scenario::kMremap:
      return "mremap";
    case Scenario::kThp:
      return "thp";
    case Scenario::kHugetlb:
      return "hugetlb";
    case Scenario::kChildTouch:
      return "child-touch";
    case Scenario::kPinAfterSharedFork:
      return "pin-after-shared-fork";
    case Scenario::kProtReadPin:
      return "prot-read-pin";
    case Scenario::kFileSharedDisk:
      return "file-shared-disk";
    case Scenario::kFileSharedTmpfs:
      return "file-shared-tmpfs";
    case Scenario::kFilePrivatePwrite:
      return "file-private-pwrite";
  }
  return "?";
}

std::string_view ScenarioDescription(Scenario s) {
  switch (s) {
    case Scenario::kZeroPagePin:
      return "map, pin before the first touch, write, device reads (the 2020 ring-to-device case)";
    case Scenario::kParentWriteChildAlive:
      return "fork(); parent writes while the child is alive; device reads";
    case Scenario::kParentWriteChildExited:
      return "fork(); child exits; parent writes; device reads";
    case Scenario::kChildWrite:
      return "fork(); the child writes the range and exits; device reads (must not see it)";
    case Scenario::kForkConcurrentWriter:
      return "fork() repeatedly while another parent thread keeps writing; final write; device "
             "reads";
    case Scenario::kDontneed:
      return "MADV_DONTNEED on the registered range, parent writes, device reads";
    case Scenario::kMunmapRemap:
      return "munmap + mmap(MAP_FIXED) at the same address, parent writes, device reads";
    case Scenario::kMremap:
      return "mremap the registered range elsewhere, fork(), parent writes there, device reads";
    case Scenario::kThp:
      return "THP-backed 4 MiB: fork(); child writes half 1, parent writes half 2; device reads";
    case Scenario::kHugetlb:
      return "hugetlb-backed 4 MiB: fork(); child writes half 1, parent writes half 2";
    case Scenario::kChildTouch:
      return "fork(); the child only reads the range (dontfork: the signal is recorded)";
    case Scenario::kPinAfterSharedFork:
      return "fork(); the child exits; then register (the page was shared); parent writes; "
             "device reads (cow.c: R/O pin on a previously-shared page)";
    case Scenario::kProtReadPin:
      return "register a PROT_READ private mapping the parent filled before mprotect; device "
             "reads (sending from .rodata)";
    case Scenario::kFileSharedDisk:
      return "MAP_SHARED of a file on a disk filesystem (--file_dir, ext4 in the guests): "
             "register, parent writes through the mapping, device reads";
    case Scenario::kFileSharedTmpfs:
      return "the same on tmpfs (--tmpfs_dir), where no writeback tracks dirty pages";
    case Scenario::kFilePrivatePwrite:
      return "MAP_PRIVATE of a file on --file_dir: register, pwrite() new data into the file, "
             "device reads (does it see the file's change?)";
  }
  return "?";
}

std::optional<Scenario> ParseScenario(std::string_view name) {
  for (Scenario s : kAllScenarios) {
    if (ScenarioName(s) == name) return s;
  }
  return std::nullopt;
}

std::vector<std::string> SplitList(std::string_view csv) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= csv.size()) {
    std::size_t comma = csv.find(',', pos);
    if (comma == std::string_view::npos) comma = csv.size();
    std::string_view item = csv.substr(pos, comma - pos);
    if (!item.empty() && item != "all") out.emplace_back(item);
    pos = comma + 1;
  }
  return out;
}

void CountBytes(const std::uint8_t* view, const std::uint8_t* expected, std::size_t n,
                std::uint8_t child_byte, Observation* obs) {
  for (std::size_t i = 0; i < n; ++i) {
    if (view[i] == expected[i]) {
      ++obs->bytes_expected;
    } else if (view[i] == child_byte) {
      ++obs->bytes_child;
    } else {
      ++obs->bytes_old;
    }
  }
}

Outcome Classify(const Observation& obs) {
  if (!obs.skip_reason.empty()) return Outcome::kSkipped;
  if (obs.pin_errno != 0) return obs.pin_refused ? Outcome::kRefused : Outcome::kPinFailed;
  if (obs.device_fault) return Outcome::kDeviceFault;
  if (obs.bytes_child > 0) return Outcome::kLeak;
  if (obs.bytes_old > 0) return Outcome::kStale;
  if (obs.child_signal != 0) return Outcome::kChildSignal;
  if (obs.bytes_expected > 0) return Outcome::kCoherent;
  return Outcome::kUnknown;  // nothing was read: a tool bug, never a result
}

bool IsRefusalErrno(int err) {
  // forkcheck raises RLIMIT_MEMLOCK to infinity first, so EPERM is not the memlock limit here.
  return err == EFAULT || err == EACCES || err == EPERM || err == EOPNOTSUPP;
}

std::string_view BlameName(Blame b) {
  switch (b) {
    case Blame::kNone:
      return "none";
    case Blame::kByDesign:
      return "by-design";
    case Blame::kApplication:
      return "application";
    case Blame::kKernel:
      return "kernel";
    case Blame::kBackend:
      return "backend";
    case Blame::kEnvironment:
      return "environment";
    case Blame::kUnexplained:
      return "unexplained";
  }
  return "?";
}

namespace {

bool IsForkScenario(Scenario s) {
  return s != Scenario::kZeroPagePin && s != Scenario::kDontneed && s != Scenario::kMunmapRemap &&
         s != Scenario::kProtReadPin && s != Scenario::kFileSharedDisk &&
         s != Scenario::kFileSharedTmpfs && s != Scenario::kFilePrivatePwrite;
}
// Scenarios where the child writes into the range.
bool ChildWrites(Scenario s) {
  return s == Scenario::kChildWrite || s == Scenario::kThp || s == Scenario::kHugetlb;
}

}  // namespace

Expectation Expect(Scenario s, ForkMode m, const KernelFacts& /*k*/) {
  // The expectation is what the MODE promises, independent of the kernel: a kernel that cannot
  // keep the promise shows up as a mismatch blamed on the kernel.
  const bool reads_only = m == ForkMode::kReadOnly || m == ForkMode::kOdp;
  if (s == Scenario::kFileSharedDisk) {
    if (reads_only) {
      return {Outcome::kCoherent,
              "a read-only registration of a shared file page dirties nothing: allowed, and the "
              "device sees the parent's writes to the page cache page"};
    }
    return {Outcome::kRefused,
            "a long-term write pin of a file page that writeback tracks (ext4) is what the 2020 "
            "thread's set_page_dirty() trouble is about; kernels from 6.5 refuse it (EFAULT)"};
  }
  if (s == Scenario::kFileSharedTmpfs) {
    return {Outcome::kCoherent,
            "tmpfs pages need no writeback: the pin holds the page cache page the parent writes"};
  }
  if (s == Scenario::kFilePrivatePwrite) {
    if (m == ForkMode::kOdp) {
      return {Outcome::kCoherent,
              "odp pins nothing: the device follows the mapping, which still maps the page cache "
              "page the pwrite() changed"};
    }
    return {Outcome::kStale,
            "a long-term pin of a MAP_PRIVATE file page, read-only or not, gives the process its "
            "own copy at registration (6.1: FOLL_FORCE|FOLL_WRITE breaks COW; from 6.2 read-only "
            "long-term pins unshare in COW mappings): the device and the mapping keep that copy, "
            "neither sees the file's later pwrite(); map the file MAP_SHARED to follow it"};
  }
  if (s == Scenario::kProtReadPin) {
    if (reads_only) {
      return {Outcome::kCoherent,
              m == ForkMode::kOdp
                  ? "odp pins nothing: the device faults the read-only pages in for reading"
                  : "a read-only registration needs no write access: the device reads the "
                    "read-only pages"};
    }
    return {Outcome::kRefused,
            "the mode registers for write (LOCAL_WRITE, or io_uring's FOLL_WRITE) and the mapping "
            "is read-only: the kernel refuses the pin (EFAULT); use readonly for .rodata"};
  }
  if (m == ForkMode::kOdp) {
    // Nothing is pinned: the device resolves the registered virtual addresses through the
    // process's page tables on every access (mmu notifiers invalidate, the next access faults).
    if (s == Scenario::kDontneed || s == Scenario::kMunmapRemap) {
      return {Outcome::kCoherent,
              "odp pins nothing: the device follows the page tables, so it sees the page that is "
              "mapped there now"};
    }
    if (s == Scenario::kMremap) {
      return {Outcome::kDeviceFault,
              "odp registers virtual addresses: once mremap moved the range away nothing is mapped "
              "there and the device's access faults (remote access error); register again after "
              "moving memory"};
    }
    return {Outcome::kCoherent,
            "odp pins nothing: after fork() the device follows the parent's page tables (its COW "
            "copy included) and never sees the child's pages"};
  }
  if (s == Scenario::kDontneed || s == Scenario::kMunmapRemap) {
    if (m == ForkMode::kShared) {
      return {Outcome::kCoherent,
              "the memfd page survives the unmap, so the new mapping is the pinned page"};
    }
    return {Outcome::kStale,
            "no mode: a pin holds the old page; discarding or replacing the mapping under a live "
            "registration is an application error (deregister first)"};
  }
  if (m == ForkMode::kShared && ChildWrites(s)) {
    return {Outcome::kLeak,
            "shared memory is the same pages in parent and child: the child's write reaches the "
            "device, by design"};
  }
  if (m == ForkMode::kDontFork && (ChildWrites(s) || s == Scenario::kChildTouch)) {
    return {Outcome::kChildSignal,
            "the child has no mapping of a dontfork range: touching it raises SIGSEGV; the device "
            "keeps the parent's data"};
  }
  if (s == Scenario::kPinAfterSharedFork) {
    return {Outcome::kCoherent,
            "the pin, taken after the child is gone, holds the page the parent keeps writing"};
  }
  if (!IsForkScenario(s)) {
    return {Outcome::kCoherent, "the pin follows the parent's later writes"};
  }
  return {Outcome::kCoherent,
          "the parent keeps the pinned page across fork(); the device sees "
          "the parent's writes and never the child's"};
}

Judgement Judge(Scenario s, ForkMode m, const KernelFacts& k, Outcome got, const Observation& obs) {
  Judgement j;
  j.expected = Expect(s, m, k);
  if (got == Outcome::kSkipped) {
    j.blame = Blame::kEnvironment;
    j.explanation = obs.skip_reason;
    // "backend: ..." = the backend cannot express the mode; "backend X unavailable" = no device.
    if (obs.skip_reason.rfind("backend:", 0) == 0) j.blame = Blame::kBackend;
    return j;
  }
  j.mismatch = got != j.expected.outcome;
  if (got == Outcome::kUnknown) {
    j.mismatch = true;
    j.blame = Blame::kUnexplained;
    j.explanation = "tool bug: the device view was empty (no bytes compared)";
    return j;
  }
  if (!j.mismatch) {
    switch (got) {
      case Outcome::kCoherent:
        j.blame = Blame::kNone;
        if (m == ForkMode::kReadOnly && !k.reliable_readonly_pins &&
            (s == Scenario::kZeroPagePin || IsForkScenario(s))) {
          // Better than the version check predicts: say why instead of leaving it unexplained.
          j.explanation = absl::StrCat(
              "coherent although kernel ", k.release,
              " predates reliable read-only long-term pins (6.2): before 6.2 the RDMA core "
              "(ib_umem_get) pinned read-only MRs with FOLL_FORCE|FOLL_WRITE, i.e. the kernel "
              "itself did write-for-read; 6.2 dropped FOLL_FORCE when R/O pins became reliable");
        }
        break;
      case Outcome::kStale:
      case Outcome::kDeviceFault:
        j.blame = s == Scenario::kFilePrivatePwrite ? Blame::kByDesign : Blame::kApplication;
        j.explanation = j.expected.guarantee;
        break;
      case Outcome::kRefused:
        j.blame = Blame::kByDesign;
        j.explanation = absl::StrCat(j.expected.guarantee, " (", std::strerror(obs.pin_errno),
                                     ", errno ", obs.pin_errno, ")");
        break;
      case Outcome::kLeak:
      case Outcome::kChildSignal:
        j.blame = Blame::kByDesign;
        j.explanation = j.expected.guarantee;
        if (obs.child_signal != 0) {
          absl::StrAppend(&j.explanation, " (child signal ", obs.child_signal, " = ",
                          sigabbrev_np(obs.child_signal) ? sigabbrev_np(obs.child_signal) : "?",
                          ")");
        }
        break;
      default:
        break;
    }
    return j;
  }
  // A mismatch: explain it.
  const std::string got_name(OutcomeName(got));
  if (got == Outcome::kDeviceFault) {
    j.blame = Blame::kBackend;
    j.explanation = "the registration held but the device's read failed (the cell's detail has the "
                    "work completion status)";
    return j;
  }
  if (s == Scenario::kFileSharedDisk && j.expected.outcome == Outcome::kRefused &&
      got == Outcome::kCoherent) {
    j.blame = Blame::kKernel;
    j.explanation = absl::StrCat(
        "kernel ", k.release, " still grants long-term write pins of file pages that writeback "
        "tracks (refused from 6.5): the device may write a page the filesystem believes clean, "
        "the set_page_dirty() problem of the 2020 thread");
    return j;
  }
  if (got == Outcome::kRefused) {
    j.blame = Blame::kKernel;
    j.explanation = absl::StrCat("kernel ", k.release, " refused the registration: ",
                                 std::strerror(obs.pin_errno), " (errno ", obs.pin_errno, ")");
    return j;
  }
  if (got == Outcome::kPinFailed) {
    j.blame = Blame::kBackend;
    j.explanation = absl::StrCat("registration failed: ", std::strerror(obs.pin_errno), " (errno ",
                                 obs.pin_errno, ")");
    return j;
  }
  if (got == Outcome::kStale && m == ForkMode::kReadOnly && !k.reliable_readonly_pins) {
    j.blame = Blame::kKernel;
    j.explanation = absl::StrCat(
        "kernel ", k.release,
        " predates reliable read-only long-term pins (6.2): a read-only pin can hold the shared "
        "zero page or a page that a later COW replaces in the parent, so the device keeps "
        "reading the old page -- the 2020 LKML case (COW broken the wrong way)");
    if (s == Scenario::kZeroPagePin) {
      absl::StrAppend(&j.explanation,
                      "; pre-fault (write) the range before a read-only registration, or use "
                      "write-for-read");
    }
    return j;
  }
  if (got == Outcome::kStale && IsForkScenario(s) && !k.copy_on_fork) {
    j.blame = Blame::kKernel;
    j.explanation = absl::StrCat("kernel ", k.release,
                                 " lacks copy-on-fork of pinned pages (5.9+): the parent's "
                                 "write after fork() COWed away from the pinned page");
    return j;
  }
  if (got == Outcome::kCoherent && j.expected.outcome == Outcome::kStale) {
    j.blame = Blame::kNone;
    j.explanation =
        "better than guaranteed: the device saw the new data although the registration predates "
        "the remap (backend re-resolved pages or the page was reused); do not rely on it";
    return j;
  }
  if (got == Outcome::kCoherent && j.expected.outcome == Outcome::kChildSignal) {
    j.blame = Blame::kUnexplained;
    j.explanation =
        "the child touched a dontfork range without a signal: MADV_DONTFORK did not "
        "take effect (madvise failed silently, or the range moved)";
    return j;
  }
  j.blame = Blame::kUnexplained;
  j.explanation = absl::StrCat(
      "got ", got_name, " where the mode guarantees ", std::string(OutcomeName(j.expected.outcome)),
      ": ", j.expected.guarantee, " -- not explained by a known kernel limitation; investigate");
  if (obs.child_signal != 0)
    absl::StrAppend(&j.explanation, " (child signal ", obs.child_signal, ")");
  return j;
}

}  // namespace pinring::forkcheck
