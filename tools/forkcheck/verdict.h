// The fork evaluator's verdict logic: what a cell's observation means, what each fork mode is
// expected to guarantee in each scenario, and the explanation printed beside every result that is
// not plainly "coherent as guaranteed". Pure functions: unit-tested on constructed cases.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pinring/fork_mode.h"

namespace pinring::forkcheck {

enum class Outcome : std::uint8_t {
  kCoherent,     // the device saw exactly what the parent last wrote
  kStale,        // the device saw old data (an earlier value, the zero page, garbage)
  kLeak,         // the device saw data the child wrote
  kChildSignal,  // the child died from a signal touching the range (device view was coherent)
  kPinFailed,    // the registration failed for a reason of the environment (errno recorded)
  kRefused,      // the kernel rejected the registration as such (EFAULT, EACCES, EPERM,
                 // EOPNOTSUPP: e.g. a write pin of a read-only mapping); errno recorded
  kDeviceFault,  // the registration held, but the device's access failed: under odp, the
                 // registered addresses no longer map memory (remote access error)
  kSkipped,      // not run; reason recorded
  kUnknown,      // never a valid final result: the tests fail on it
};
std::string_view OutcomeName(Outcome o);

enum class Scenario : std::uint8_t {
  kZeroPagePin,             // 1: map, pin before first touch, write, device reads
  kParentWriteChildAlive,   // 2
  kParentWriteChildExited,  // 3
  kChildWrite,              // 4: the child's write must never reach the device
  kForkConcurrentWriter,    // 5: fork() while another parent thread keeps writing
  kDontneed,                // 6a: MADV_DONTNEED under a live registration
  kMunmapRemap,             // 6b: munmap + mmap at the same address under a live registration
  kMremap,                  // 7: mremap the registered range, then fork, parent writes
  kThp,                     // 8a: THP-backed region, child writes one half, parent the other
  kHugetlb,                 // 8b: hugetlb-backed, same
  kChildTouch,              // 9: the child reads the range (SIGSEGV under dontfork)
  kPinAfterSharedFork,      // 10: cow.c's "R/O pin on a previously-shared page": fork, the
                            //     child exits, then register, parent writes, device reads
  kProtReadPin,             // 11: register a PROT_READ mapping (the .rodata case), device reads
  kFileSharedDisk,          // 12: MAP_SHARED of a file on a disk filesystem (ext4): register,
                            //     parent writes through the mapping, device reads
  kFileSharedTmpfs,         // 13: the same on tmpfs, for comparison
  kFilePrivatePwrite,       // 14: MAP_PRIVATE of a file: register, pwrite() the file, device reads
};
inline constexpr Scenario kAllScenarios[] = {Scenario::kZeroPagePin,
                                             Scenario::kParentWriteChildAlive,
                                             Scenario::kParentWriteChildExited,
                                             Scenario::kChildWrite,
                                             Scenario::kForkConcurrentWriter,
                                             Scenario::kDontneed,
                                             Scenario::kMunmapRemap,
                                             Scenario::kMremap,
                                             Scenario::kThp,
                                             Scenario::kHugetlb,
                                             Scenario::kChildTouch,
                                             Scenario::kPinAfterSharedFork,
                                             Scenario::kProtReadPin,
                                             Scenario::kFileSharedDisk,
                                             Scenario::kFileSharedTmpfs,
                                             Scenario::kFilePrivatePwrite};
std::string_view ScenarioName(Scenario s);
std::string_view ScenarioDescription(Scenario s);
std::optional<Scenario> ParseScenario(std::string_view name);

// Parses "a,b,c" into names; "" or "all" -> empty (meaning all).
std::vector<std::string> SplitList(std::string_view csv);

// What the running kernel offers (from KernelForkReport).
struct KernelFacts {
  bool copy_on_fork = true;            // pinned anonymous pages are copied into the child (5.9+)
  bool reliable_readonly_pins = true;  // R/O long-term pins unshare / avoid the zero page (6.2+)
  std::string release;
};

// What the device saw, reduced to byte counts against the image the parent expects, plus what
// happened to the child and the registration.
struct Observation {
  std::size_t bytes_expected = 0;  // equal to the expected image
  std::size_t bytes_child = 0;     // equal to the child's pattern where the image differs
  std::size_t bytes_old = 0;       // anything else (older value, zero page, garbage)
  int child_signal = 0;            // signal that killed the child, 0 if none
  int pin_errno = 0;               // != 0: registration failed
  bool pin_refused = false;        // ... and the errno is the kernel's refusal (IsRefusalErrno)
  bool device_fault = false;       // the device read failed after the registration held
  std::string skip_reason;         // non-empty: not run
};

// Counts `view` against `expected` (same size); child_byte is the child's fill pattern.
void CountBytes(const std::uint8_t* view, const std::uint8_t* expected, std::size_t n,
                std::uint8_t child_byte, Observation* obs);

// True for the errnos with which the kernel refuses a registration as such (a write pin of a
// read-only mapping, a long-term pin it does not allow) rather than for lack of a resource.
bool IsRefusalErrno(int err);

// Precedence: skipped, refused, pin-failed, device-fault, leak, stale, child-signal, coherent.
Outcome Classify(const Observation& obs);

// Who or what a non-coherent or unexpected result is due to.
enum class Blame : std::uint8_t {
  kNone,         // coherent as guaranteed
  kByDesign,     // the mode's documented behaviour (shared leaks, dontfork kills the child)
  kApplication,  // the scenario is an application error no mode can make safe (stale pins)
  kKernel,       // the running kernel lacks a fix (says which)
  kBackend,      // the pin backend cannot express the mode or failed to register
  kEnvironment,  // the machine lacks the feature (no hugetlb pages, no THP, no device)
  kUnexplained,  // a mismatch nothing above explains: investigate
};
std::string_view BlameName(Blame b);

struct Expectation {
  Outcome outcome = Outcome::kCoherent;
  std::string guarantee;  // one sentence: what the mode promises here
};
Expectation Expect(Scenario s, ForkMode m, const KernelFacts& k);

struct Judgement {
  Expectation expected;
  bool mismatch = false;  // outcome differs from the expectation (skips never mismatch)
  Blame blame = Blame::kNone;
  std::string explanation;  // empty only for coherent-as-expected cells
};
Judgement Judge(Scenario s, ForkMode m, const KernelFacts& k, Outcome got, const Observation& obs);

}  // namespace pinring::forkcheck
