// Private memory a client registers itself with ibv_reg_mr (the rdma transport's rings and data
// regions), under a fork-safety mode. This is where fork() matters most: the memory is the
// client's own anonymous memory, and the client is the process that forks.
//
// What each mode does here (docs/fork-modes.md has the guarantees and costs):
//   kernel          anonymous MAP_PRIVATE; access LOCAL_WRITE|REMOTE_READ(|REMOTE_WRITE).
//   dontfork        as kernel, plus MADV_DONTFORK (refcounted) on the range: the child has no
//                   mapping there and faults (SIGSEGV) if it touches it.
//   readonly        anonymous MAP_PRIVATE; access REMOTE_READ only (no LOCAL_WRITE): the kernel
//                   pins read-only. The device may not write. Before Linux 6.2 such a pin of a
//                   never-touched page could pin the shared zero page: MapForkModeMemory() touches
//                   (pre-faults for write) every page first for this reason.
//   write-for-read  anonymous MAP_PRIVATE; access LOCAL_WRITE|REMOTE_READ|REMOTE_WRITE although
//                   the device only reads: forces an exclusive page at pin time.
//   shared          a MAP_SHARED memfd: never COWed. A child SEES AND WRITES THE SAME PAGES as the
//                   parent and the device: a child's write reaches the device.
#pragma once

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pinring/fork_mode.h"
#include "verbs/verbs_device.h"

namespace pinring {

// How the pages behind a mapping are backed.
enum class PageBacking : std::uint8_t {
  kSmall = 0,    // base pages (THP disabled with MADV_NOHUGEPAGE for private memory)
  kThp = 1,      // 2 MiB-aligned, MADV_HUGEPAGE (the kernel may still give base pages)
  kHugetlb = 2,  // MAP_HUGETLB / MFD_HUGETLB (fails without reserved huge pages)
};

// An mmap()ed range owned by RAII: munmap (and close of the memfd) on destruction. Move-only.
class MappedMemory {
 public:
  MappedMemory() = default;
  MappedMemory(void* addr, std::size_t len, int memfd) : addr_(addr), len_(len), memfd_(memfd) {}
  ~MappedMemory();
  MappedMemory(MappedMemory&& o) noexcept;
  MappedMemory& operator=(MappedMemory&& o) noexcept;
  MappedMemory(const MappedMemory&) = delete;
  MappedMemory& operator=(const MappedMemory&) = delete;

  void* data() const { return addr_; }
  std::size_t size() const { return len_; }
  int memfd() const { return memfd_; }  // -1 for anonymous memory
  // Gives up ownership of the mapping (the caller munmaps); the memfd stays owned.
  void Release() {
    addr_ = nullptr;
    len_ = 0;
  }
  // After the caller moved the mapping (mremap): adopt the new address.
  void Adopt(void* addr, std::size_t len) {
    addr_ = addr;
    len_ = len;
  }

 private:
  void* addr_ = nullptr;
  std::size_t len_ = 0;
  int memfd_ = -1;
};

// Maps `len` bytes (rounded up to the page or huge-page size) for a registration under `mode`:
// kShared -> memfd_create + MAP_SHARED; others -> MAP_PRIVATE|MAP_ANONYMOUS. `prefault` writes
// every page (recommended; needed for kReadOnly before Linux 6.2, see above). Does NOT apply the
// fork-safety madvise: registration does (ApplyForkSafety), so the refcount pairs with it.
absl::StatusOr<MappedMemory> MapForkModeMemory(std::size_t len, ForkMode mode,
                                               PageBacking backing = PageBacking::kSmall,
                                               bool prefault = true);

// ibv access flags for a registration under `mode`. device_writes: the device will write into the
// memory (completion rings, RDMA READ targets). InvalidArgument for kReadOnly + device_writes.
absl::StatusOr<int> ForkModeAccessFlags(ForkMode mode, bool device_writes);

// A private region: memory mapped per mode, fork safety applied, registered with ibv_reg_mr on
// `dev`. Destruction deregisters, releases the fork-safety state, then unmaps.
class PrivateRegion {
 public:
  struct Options {
    ForkMode mode = ForkMode::kKernel;
    bool device_writes = false;
    PageBacking backing = PageBacking::kSmall;
    // The memory is only ever the local side of this process's own work requests (staging,
    // bounce buffers): no remote access at all, LOCAL_WRITE when device_writes. No peer can
    // reach it with an rkey.
    bool local_only = false;
  };
  // Errors: those of MapForkModeMemory, ApplyForkSafety, ForkModeAccessFlags and
  // VerbsDevice::Register (ResourceExhausted when RLIMIT_MEMLOCK is too small).
  static absl::StatusOr<std::unique_ptr<PrivateRegion>> Create(VerbsDevice& dev, std::size_t len,
                                                               const Options& opts);
  ~PrivateRegion();
  PrivateRegion(const PrivateRegion&) = delete;
  PrivateRegion& operator=(const PrivateRegion&) = delete;

  void* data() const { return mem_.data(); }
  std::size_t size() const { return mem_.size(); }
  ForkMode mode() const { return opts_.mode; }
  // odp only: OK when ibv_advise_mr prefetched the pages, Unimplemented when the device has no
  // prefetch (pages fault in on first access). OK for the pinned modes.
  const absl::Status& prefetch_status() const { return prefetch_; }
  int access() const { return access_; }
  const MemoryRegion& mr() const { return mr_; }

 private:
  PrivateRegion(MappedMemory mem, const Options& opts) : mem_(std::move(mem)), opts_(opts) {}
  MappedMemory mem_;
  Options opts_;
  int access_ = 0;
  bool fork_safety_applied_ = false;
  MemoryRegion mr_;
  absl::Status prefetch_;
};

// The per-client default mode from the environment: PINRING_FORK_MODE = kernel | dontfork |
// readonly | write-for-read | shared. Unset or empty -> `fallback`; anything else ->
// InvalidArgument naming the accepted values.
absl::StatusOr<ForkMode> ForkModeFromEnv(ForkMode fallback = ForkMode::kKernel);

// What the running kernel does about pinned pages on fork().
struct KernelForkReport {
  std::string release;  // uname -r
  int major = 0, minor = 0;
  // ibv_is_fork_initialized() == IBV_FORK_UNNEEDED (libibverbs asks the kernel over netlink).
  bool ibv_fork_unneeded = false;
  // RDMA_NLDEV_SYS_ATTR_COPY_ON_FORK read over rdma netlink ourselves; nullopt when unavailable.
  std::optional<bool> netlink_copy_on_fork;
  std::string netlink_note;  // why netlink_copy_on_fork is nullopt
  // Derived from the version: copy-on-fork of pinned anonymous pages (5.9+; reliable for
  // read-only pins from 6.2 on: the zero page is no longer pinned R/O and R/O pins unshare).
  bool version_has_copy_on_fork = false;
  bool version_has_reliable_readonly_pins = false;
};
KernelForkReport GetKernelForkReport();

}  // namespace pinring
