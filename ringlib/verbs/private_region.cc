#include "verbs/private_region.h"

#include <linux/netlink.h>
#include <rdma/rdma_netlink.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "verbs/fork_safety.h"
#include "pinring/status.h"

namespace pinring {
namespace {

constexpr std::size_t kHugePage = 2u << 20;

std::size_t RoundUp(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

// Reads RDMA_NLDEV_SYS_ATTR_COPY_ON_FORK with one RDMA_NLDEV_CMD_SYS_GET request, the way
// libibverbs does it in ibv_is_fork_initialized() (rdma-core libibverbs/memory.c).
std::optional<bool> ReadCopyOnForkNetlink(std::string* note) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_RDMA);
  if (fd < 0) {
    *note = absl::StrCat("socket(NETLINK_RDMA): ", std::strerror(errno),
                         " (kernel without CONFIG_INFINIBAND?)");
    return std::nullopt;
  }
  struct {
    nlmsghdr hdr;
  } req{};
  req.hdr.nlmsg_len = NLMSG_LENGTH(0);
  req.hdr.nlmsg_type = RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_SYS_GET);
  req.hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.hdr.nlmsg_seq = 1;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (sendto(fd, &req, req.hdr.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    *note = absl::StrCat("sendto(NETLINK_RDMA): ", std::strerror(errno));
    close(fd);
    return std::nullopt;
  }
  alignas(nlmsghdr) char buf[8192];
  std::optional<bool> result;
  *note = "RDMA_NLDEV_CMD_SYS_GET reply carried no COPY_ON_FORK attribute (kernel < 5.13)";
  for (int round = 0; round < 4 && !result; ++round) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *note = absl::StrCat("recv(NETLINK_RDMA): ", std::strerror(errno));
      break;
    }
    bool done = false;
    unsigned left = static_cast<unsigned>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_DONE) {
        if (h->nlmsg_type == NLMSG_ERROR) {
          const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
          if (e->error != 0) *note = absl::StrCat("SYS_GET: ", std::strerror(-e->error));
        }
        done = true;
        break;
      }
      // Attributes follow the header directly (RDMA netlink has no family header).
      int alen = static_cast<int>(h->nlmsg_len - NLMSG_HDRLEN);
      auto* a = reinterpret_cast<nlattr*>(static_cast<char*>(NLMSG_DATA(h)));
      while (alen >= static_cast<int>(sizeof(nlattr)) && a->nla_len >= sizeof(nlattr) &&
             a->nla_len <= alen) {
        if ((a->nla_type & NLA_TYPE_MASK) == RDMA_NLDEV_SYS_ATTR_COPY_ON_FORK) {
          result = *(reinterpret_cast<const std::uint8_t*>(a) + NLA_HDRLEN) != 0;
        }
        const int step = NLA_ALIGN(a->nla_len);
        alen -= step;
        a = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(a) + step);
      }
    }
    if (done) break;
  }
  close(fd);
  if (result) note->clear();
  return result;
}

}  // namespace

MappedMemory::~MappedMemory() {
  if (addr_ != nullptr) munmap(addr_, len_);
  if (memfd_ >= 0) close(memfd_);
}
MappedMemory::MappedMemory(MappedMemory&& o) noexcept
    : addr_(std::exchange(o.addr_, nullptr)),
      len_(std::exchange(o.len_, 0)),
      memfd_(std::exchange(o.memfd_, -1)) {}
MappedMemory& MappedMemory::operator=(MappedMemory&& o) noexcept {
  if (this != &o) {
    this->~MappedMemory();
    addr_ = std::exchange(o.addr_, nullptr);
    len_ = std::exchange(o.len_, 0);
    memfd_ = std::exchange(o.memfd_, -1);
  }
  return *this;
}

absl::StatusOr<MappedMemory> MapForkModeMemory(std::size_t len, ForkMode mode, PageBacking backing,
                                               bool prefault) {
  if (len == 0) return absl::InvalidArgumentError("MapForkModeMemory: len 0");
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t align = backing == PageBacking::kSmall ? page : kHugePage;
  len = RoundUp(len, align);
  void* addr = MAP_FAILED;
  int memfd = -1;
  if (mode == ForkMode::kShared) {
    memfd = memfd_create("pinring-region",
                         MFD_CLOEXEC | (backing == PageBacking::kHugetlb ? MFD_HUGETLB : 0));
    if (memfd < 0) return pinring::LastErrnoStatus("memfd_create");
    if (ftruncate(memfd, static_cast<off_t>(len)) != 0) {
      absl::Status st = pinring::LastErrnoStatus("ftruncate(memfd)");
      close(memfd);
      return st;
    }
    addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (addr == MAP_FAILED) {
      absl::Status st = pinring::LastErrnoStatus("mmap(MAP_SHARED memfd)");
      close(memfd);
      return st;
    }
    if (backing == PageBacking::kThp) (void)madvise(addr, len, MADV_HUGEPAGE);
  } else if (backing == PageBacking::kHugetlb) {
    addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1,
                0);
    if (addr == MAP_FAILED) return pinring::LastErrnoStatus("mmap(MAP_HUGETLB)");
  } else if (backing == PageBacking::kThp) {
    // Over-map and trim so the range is 2 MiB aligned: THP needs aligned 2 MiB extents.
    void* raw =
        mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return pinring::LastErrnoStatus("mmap(anonymous)");
    const auto r = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t a = RoundUp(r, kHugePage);
    if (a > r) munmap(raw, a - r);
    if (const std::uintptr_t tail = (r + len + kHugePage) - (a + len); tail > 0) {
      munmap(reinterpret_cast<void*>(a + len), tail);
    }
    addr = reinterpret_cast<void*>(a);
    (void)madvise(addr, len, MADV_HUGEPAGE);
  } else {
    addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) return pinring::LastErrnoStatus("mmap(anonymous)");
    // Base pages on purpose: with THP "always" a single fault could give a 2 MiB page, which
    // changes what fork copies. kThp asks for huge pages explicitly.
    (void)madvise(addr, len, MADV_NOHUGEPAGE);
  }
  MappedMemory mem(addr, len, memfd);
  if (prefault) {
    // A write to each page: the pin then finds a private, exclusive page (not the zero page).
    auto* p = static_cast<volatile char*>(addr);
    for (std::size_t off = 0; off < len; off += page) p[off] = 0;
  }
  return mem;
}

absl::StatusOr<int> ForkModeAccessFlags(ForkMode mode, bool device_writes) {
  const int access = internal::RegistrationAccessFor(mode, device_writes);
  if (access < 0) {
    return absl::InvalidArgumentError(
        "fork mode readonly registers device-read-only memory; the device cannot write into it "
        "(use write-for-read, dontfork or kernel for memory the device writes)");
  }
  return access;
}

absl::StatusOr<std::unique_ptr<PrivateRegion>> PrivateRegion::Create(VerbsDevice& dev,
                                                                     std::size_t len,
                                                                     const Options& opts) {
  PINRING_ASSIGN_OR_RETURN(int access, ForkModeAccessFlags(opts.mode, opts.device_writes));
  if (opts.local_only) {
    access = (opts.device_writes ? IBV_ACCESS_LOCAL_WRITE : 0) | (access & IBV_ACCESS_ON_DEMAND);
  }
  PINRING_ASSIGN_OR_RETURN(MappedMemory mem, MapForkModeMemory(len, opts.mode, opts.backing));
  std::unique_ptr<PrivateRegion> r(new PrivateRegion(std::move(mem), opts));
  r->access_ = access;
  PINRING_RETURN_IF_ERROR(internal::ApplyForkSafety(r->data(), r->size(), opts.mode));
  r->fork_safety_applied_ = true;
  PINRING_ASSIGN_OR_RETURN(r->mr_, dev.Register(r->data(), r->size(), access));
  // odp: map the pages on the device now where it can; where it cannot, the first access faults
  // them in (prefetch_status() says which).
  if (ForkModeIsOnDemand(opts.mode)) r->prefetch_ = dev.Prefetch(r->mr_, opts.device_writes);
  return r;
}

PrivateRegion::~PrivateRegion() {
  (void)mr_.Deregister();  // unpin first: the madvise state must outlive the pin
  if (fork_safety_applied_) internal::ReleaseForkSafety(data(), size(), opts_.mode);
}

absl::StatusOr<ForkMode> ForkModeFromEnv(ForkMode fallback) {
  const char* v = std::getenv("PINRING_FORK_MODE");
  if (v == nullptr || *v == '\0') return fallback;
  if (auto m = ParseForkMode(std::string_view(v))) return *m;
  return absl::InvalidArgumentError(
      absl::StrCat("PINRING_FORK_MODE=", v,
                   ": expected one of kernel, dontfork, readonly, write-for-read, shared"));
}

KernelForkReport GetKernelForkReport() {
  KernelForkReport r;
  utsname u{};
  if (uname(&u) == 0) {
    r.release = u.release;
    std::sscanf(u.release, "%d.%d", &r.major, &r.minor);
  }
  const auto ver = r.major * 1000 + r.minor;
  r.version_has_copy_on_fork = ver >= 5009;
  r.version_has_reliable_readonly_pins = ver >= 6002;
  r.ibv_fork_unneeded = IbvForkUnneeded();
  r.netlink_copy_on_fork = ReadCopyOnForkNetlink(&r.netlink_note);
  return r;
}

}  // namespace pinring
