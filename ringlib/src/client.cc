// Client: connect + handshake, and creation of queues and regions (memfds, seals, mappings, fds).
#include "pinring/client.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connection.h"
#include "verbs/fork_safety.h"
#include "pinring/fork_generation.h"
#include "verbs/private_region.h"
#include "pinring/status.h"

#ifndef PINRING_DEFAULT_SOCKET
#define PINRING_DEFAULT_SOCKET "/run/pinring/ringd.sock"
#endif

namespace pinring {
namespace {

// Closes an fd on scope exit unless released.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Unmaps on scope exit unless released.
class ScopedMapping {
 public:
  ScopedMapping(void* addr, std::size_t len) : addr_(addr), len_(len) {}
  ~ScopedMapping() {
    if (addr_ != nullptr) ::munmap(addr_, len_);
  }
  ScopedMapping(const ScopedMapping&) = delete;
  ScopedMapping& operator=(const ScopedMapping&) = delete;
  void* release() { return std::exchange(addr_, nullptr); }

 private:
  void* addr_;
  std::size_t len_;
};

std::string FixedString(const char* s, std::size_t cap) { return std::string(s, strnlen(s, cap)); }

// A value from /proc/meminfo ("HugePages_Free", "Hugepagesize"), or -1.
long long MeminfoValue(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  long long value;
  std::string unit;
  while (in >> name >> value) {
    if (name == key + ":") return value;
    std::getline(in, unit);
  }
  return -1;
}

absl::Status HugePageError(std::uint64_t map_len, std::uint64_t huge_page) {
  const long long free_pages = MeminfoValue("HugePages_Free");
  const std::uint64_t need = map_len / huge_page;
  return absl::ResourceExhaustedError(absl::StrCat(
      "no huge pages available for a ", map_len, "-byte region (need ", need, " pages of ",
      huge_page / 1024, " kB, HugePages_Free=", free_pages,
      "): reserve some with `sudo sysctl vm.nr_hugepages=", need,
      "` (or more), or create the region without huge_pages"));
}

}  // namespace

std::string ResolveSocketPath(const ClientOptions& options) {
  if (!options.socket_path.empty()) return options.socket_path;
  if (const char* env = std::getenv("PINRING_SOCKET"); env != nullptr && *env != '\0') return env;
  return PINRING_DEFAULT_SOCKET;
}

absl::StatusOr<Client> Client::Connect(const ClientOptions& options) {
  internal::InstallForkHandler();
  // The client's region default, first layers (the rest needs ringd's HelloReply): resolved
  // before connecting, so a bad value fails here, naming itself, without touching ringd.
  std::optional<ForkMode> default_mode;
  std::string_view default_source;
  if (options.default_fork_mode.has_value()) {
    // A caller may have cast any byte to ForkMode: only the six modes are accepted.
    if (static_cast<std::uint8_t>(*options.default_fork_mode) >= kForkModeCount) {
      return absl::InvalidArgumentError(
          "Client::Connect: ClientOptions::default_fork_mode is not a pinring::ForkMode");
    }
    default_mode = options.default_fork_mode;
    default_source = "ClientOptions";
  } else if (const char* env = std::getenv("PINRING_FORK_MODE"); env != nullptr && *env != '\0') {
    // Untrusted text from the environment: ForkModeFromEnv accepts only the six mode names and
    // turns anything else into InvalidArgument (never a silent fallback).
    absl::StatusOr<ForkMode> m = ForkModeFromEnv();
    if (!m.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Client::Connect: ", m.status().message(),
          " (or unset it, or set ClientOptions::default_fork_mode)"));
    }
    default_mode = *m;
    default_source = "PINRING_FORK_MODE";
  }
  const std::string path = ResolveSocketPath(options);
  auto conn = internal::Connection::Open(path, options.request_timeout);
  if (!conn.ok()) return conn.status();

  wire::Hello hello{};
  hello.min_version = wire::kVersion;
  hello.max_version = wire::kVersion;
  wire::SetText(hello.name, options.name.empty() ? absl::string_view(program_invocation_short_name)
                                                 : absl::string_view(options.name));
  auto reply = (*conn)->CallFixed<wire::HelloReply>(wire::MessageType::kHello, hello, {},
                                                    wire::MessageType::kHelloReply);
  if (!reply.ok()) {
    const absl::Status& s = reply.status();
    if (absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "protocol version")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "version mismatch: ringd at ", path, " speaks another wire protocol (", s.message(),
          "); install ringd and ringlib from the same pinring release"));
    }
    return absl::Status(s.code(), absl::StrCat("handshake with ringd at ", path, ": ", s.message()));
  }
  if (absl::Status s = wire::FromReplyStatus(reply->status); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("ringd at ", path, " refused the handshake: ",
                                               s.message()));
  }
  if (reply->version != wire::kVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "version mismatch: ringd at ", path, " chose wire protocol version ", reply->version,
        ", this ringlib speaks ", wire::kVersion,
        "; install ringd and ringlib from the same pinring release"));
  }
  Client c;
  c.conn_ = *std::move(conn);
  c.generation_ = internal::CurrentForkGeneration();
  c.info_.socket_path = path;
  c.info_.version = reply->version;
  c.info_.client_id = reply->client_id;
  c.info_.limits = reply->limits;
  c.info_.backend = FixedString(reply->backend, sizeof reply->backend);
  c.info_.device = FixedString(reply->device, sizeof reply->device);
  // ringd's announced default: checked before use, a value outside the six modes means a ringd
  // that does not speak this field as we do.
  if (reply->default_fork_mode_set == wire::kDefaultForkModeSet) {
    if (reply->default_fork_mode >= kForkModeCount) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ringd at ", path, " announced an unknown default fork mode ", reply->default_fork_mode,
          "; install ringd and ringlib from the same pinring release"));
    }
    c.info_.default_fork_mode = static_cast<ForkMode>(reply->default_fork_mode);
  } else if (reply->default_fork_mode_set != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ringd at ", path, " sent HelloReply.default_fork_mode_set=", reply->default_fork_mode_set,
        "; install ringd and ringlib from the same pinring release"));
  }
  if (default_mode.has_value()) {
    c.default_fork_mode_ = *default_mode;
    c.default_fork_mode_source_ = default_source;
  } else if (c.info_.default_fork_mode.has_value()) {
    c.default_fork_mode_ = *c.info_.default_fork_mode;
    c.default_fork_mode_source_ = "ringd --default_fork_mode";
  }  // else the built-in kDontFork
  return c;
}

Client::~Client() = default;

absl::Status Client::Usable(const char* what) const {
  if (conn_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": empty pinring::Client handle"));
  }
  if (generation_ != internal::CurrentForkGeneration()) {
    return internal::InheritedAcrossForkError("this pinring::Client");
  }
  if (conn_->dead()) return conn_->DeadStatus();
  return absl::OkStatus();
}

absl::Status Client::Health() const {
  PINRING_RETURN_IF_ERROR(Usable("Health"));
  conn_->PollIncoming();
  if (conn_->dead()) return conn_->DeadStatus();
  return absl::OkStatus();
}

absl::StatusOr<Region> Client::CreateRegion(const RegionOptions& options) {
  PINRING_RETURN_IF_ERROR(Usable("CreateRegion"));
  if (options.size == 0) return absl::InvalidArgumentError("CreateRegion: size must be > 0");
  const wire::Limits& lim = info_.limits;
  if (lim.max_region_bytes != 0 && options.size > lim.max_region_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("CreateRegion: ", options.size,
                                                   " bytes exceeds ringd's limit of ",
                                                   lim.max_region_bytes, " bytes per region"));
  }
  // The region's own mode, else the client's default (resolved by Connect).
  const ForkMode mode = options.fork_mode.value_or(default_fork_mode_);
  if (static_cast<std::uint8_t>(mode) >= kForkModeCount) {
    return absl::InvalidArgumentError("CreateRegion: unknown fork mode");
  }
  std::uint64_t page = kPageSize;
  if (options.huge_pages) {
    const long long kb = MeminfoValue("Hugepagesize");
    if (kb <= 0) {
      return absl::FailedPreconditionError(
          "CreateRegion: this kernel reports no huge page support (no Hugepagesize in "
          "/proc/meminfo); create the region without huge_pages");
    }
    page = static_cast<std::uint64_t>(kb) * 1024;
  }
  const std::uint64_t map_len = RoundUp(options.size, page);
  if (options.huge_pages) {
    const long long free_pages = MeminfoValue("HugePages_Free");
    if (free_pages >= 0 && static_cast<std::uint64_t>(free_pages) < map_len / page) {
      return HugePageError(map_len, page);
    }
  }

  ScopedFd memfd(::memfd_create(
      "pinring-region", MFD_CLOEXEC | MFD_ALLOW_SEALING | (options.huge_pages ? MFD_HUGETLB : 0)));
  if (memfd.get() < 0) {
    if (options.huge_pages && errno == EINVAL) {
      return absl::FailedPreconditionError(
          "CreateRegion: memfd_create(MFD_HUGETLB) is not supported here; create the region "
          "without huge_pages");
    }
    return pinring::LastErrnoStatus("memfd_create(pinring-region)");
  }
  if (::ftruncate(memfd.get(), static_cast<off_t>(map_len)) != 0) {
    return pinring::LastErrnoStatus("ftruncate(region memfd)");
  }
  void* addr = ::mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  if (addr == MAP_FAILED) {
    if (options.huge_pages && errno == ENOMEM) return HugePageError(map_len, page);
    return pinring::LastErrnoStatus("mmap(region memfd)");
  }
  ScopedMapping mapping(addr, map_len);
  // ringd requires that the memfd can never shrink under its mapping (a shrink would SIGBUS it).
  // Growing is sealed too: the registration covers a fixed size. F_SEAL_SEAL: nobody can change
  // the seals later.
  if (::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return pinring::LastErrnoStatus("fcntl(F_ADD_SEALS) on the region memfd");
  }
  // The fork-safety hook runs right before the registration (fork_safety.h).
  PINRING_RETURN_IF_ERROR(internal::ApplyForkSafety(addr, map_len, mode));

  wire::RegisterRegion req{};
  req.size = options.size;
  req.fork_mode = static_cast<std::uint8_t>(mode);
  req.flags = options.huge_pages ? wire::kRegionHugePages : 0;
  const int fds[1] = {memfd.get()};
  auto reply = conn_->CallFixed<wire::RegisterRegionReply>(
      wire::MessageType::kRegisterRegion, req, fds, wire::MessageType::kRegisterRegionReply);
  absl::Status st = reply.ok() ? wire::FromReplyStatus(reply->status) : reply.status();
  if (!st.ok()) {
    internal::ReleaseForkSafety(addr, map_len, mode);
    return absl::Status(st.code(), absl::StrCat("RegisterRegion (", options.size, " bytes, fork mode ",
                                                std::string(ForkModeName(mode)),
                                                "): ", st.message()));
  }
  Region r;
  r.conn_ = conn_;
  r.addr_ = mapping.release();
  r.map_len_ = map_len;
  r.size_ = options.size;
  r.handle_ = reply->handle;
  r.generation_ = generation_;
  r.fork_mode_ = mode;
  r.huge_pages_ = options.huge_pages;
  r.fork_safety_applied_ = true;
  r.pinned_after_ = reply->pinned_bytes;
  return r;  // the memfd closes here; ringd holds its own reference
}

absl::StatusOr<Queue> Client::CreateQueue(const QueueOptions& options) {
  PINRING_RETURN_IF_ERROR(Usable("CreateQueue"));
  const std::uint32_t sq = options.sq_entries;
  const std::uint32_t cq = options.cq_entries == 0 ? sq : options.cq_entries;
  const wire::Limits& lim = info_.limits;
  if (!IsValidRingSize(sq) || !IsValidRingSize(cq)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CreateQueue: ring sizes must be powers of two in [", kMinRingEntries, ", ",
        kMaxRingEntries, "], got sq_entries=", sq, " cq_entries=", cq));
  }
  if ((lim.max_sq_entries != 0 && sq > lim.max_sq_entries) ||
      (lim.max_cq_entries != 0 && cq > lim.max_cq_entries)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CreateQueue: sq_entries=", sq, " cq_entries=", cq, " exceed ringd's limits (",
        lim.max_sq_entries, ", ", lim.max_cq_entries, ")"));
  }
  if (static_cast<std::uint8_t>(options.doorbell) >= wire::kDoorbellModeCount ||
      static_cast<std::uint8_t>(options.completion_wait) >= wire::kCompletionWaitCount) {
    return absl::InvalidArgumentError("CreateQueue: unknown doorbell mode or completion wait");
  }
  const QueueLayout layout = ComputeQueueLayout(sq, cq);

  ScopedFd memfd(::memfd_create("pinring-queue", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (memfd.get() < 0) return pinring::LastErrnoStatus("memfd_create(pinring-queue)");
  // Exactly total_size: ringd checks the size against its own ComputeQueueLayout.
  if (::ftruncate(memfd.get(), static_cast<off_t>(layout.total_size)) != 0) {
    return pinring::LastErrnoStatus("ftruncate(queue memfd)");
  }
  void* addr =
      ::mmap(nullptr, layout.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  if (addr == MAP_FAILED) return pinring::LastErrnoStatus("mmap(queue memfd)");
  ScopedMapping mapping(addr, layout.total_size);
  auto* header = static_cast<QueueHeader*>(addr);
  // A fresh memfd reads as zeros, so every index and flag starts at 0. The layout is written
  // before the memfd is sent; sendmsg(2) is a full barrier between us and ringd's later read.
  std::memcpy(&header->layout, &layout, sizeof layout);
  // ringd requires F_SEAL_SHRINK (a shrink would SIGBUS its poller); the size is fixed, so grow
  // is sealed too, and F_SEAL_SEAL freezes the seals.
  if (::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return pinring::LastErrnoStatus("fcntl(F_ADD_SEALS) on the queue memfd");
  }
  // The rings are ours alone: a forked child gets no mapping there, so it can never write the
  // parent's ring (and the kernel never has to COW-copy pages ringd may have pinned).
  if (options.dont_fork && ::madvise(addr, layout.total_size, MADV_DONTFORK) != 0) {
    return pinring::LastErrnoStatus("madvise(MADV_DONTFORK) on the queue");
  }
  // Both eventfds are non-blocking: we only ever write the doorbell (never blocks in practice)
  // and drain the completion counter after poll() says it is readable.
  ScopedFd doorbell(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (doorbell.get() < 0) return pinring::LastErrnoStatus("eventfd(doorbell)");
  ScopedFd completion(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (completion.get() < 0) return pinring::LastErrnoStatus("eventfd(completion)");

  wire::CreateQueue req{};
  req.sq_entries = sq;
  req.cq_entries = cq;
  req.doorbell_mode = static_cast<std::uint8_t>(options.doorbell);
  req.completion_wait = static_cast<std::uint8_t>(options.completion_wait);
  req.adaptive_poll_us = options.adaptive_poll_us;
  // The order is the contract (wire_protocol.h): [queue memfd, doorbell, completion].
  const int fds[3] = {memfd.get(), doorbell.get(), completion.get()};
  auto reply = conn_->CallFixed<wire::CreateQueueReply>(wire::MessageType::kCreateQueue, req, fds,
                                                        wire::MessageType::kCreateQueueReply);
  absl::Status st = reply.ok() ? wire::FromReplyStatus(reply->status) : reply.status();
  if (!st.ok()) {
    return absl::Status(st.code(), absl::StrCat("CreateQueue (sq ", sq, ", cq ", cq, "): ",
                                                st.message()));
  }
  Queue q;
  q.conn_ = conn_;
  q.header_ = header;
  mapping.release();
  q.map_len_ = layout.total_size;
  auto* bytes = static_cast<std::byte*>(addr);
  q.sq_ = SubmissionProducer(reinterpret_cast<Descriptor*>(bytes + layout.sq_offset), sq,
                             &header->sq_tail.value, &header->sq_head.value);
  q.cq_ = CompletionConsumer(reinterpret_cast<const Completion*>(bytes + layout.cq_offset), cq,
                             &header->cq_head.value, &header->cq_tail.value);
  q.doorbell_ = options.doorbell;
  q.wait_ = options.completion_wait;
  q.doorbell_fd_ = doorbell.release();
  q.completion_fd_ = completion.release();
  q.queue_id_ = reply->queue_id;
  q.generation_ = generation_;
  return q;
}

absl::StatusOr<std::string> Client::Stats() {
  PINRING_RETURN_IF_ERROR(Usable("Stats"));
  wire::StatsRequest req{};
  auto bytes = conn_->Call(wire::MessageType::kStatsRequest, &req, sizeof req, {},
                           wire::MessageType::kStatsReply);
  if (!bytes.ok()) return bytes.status();
  wire::MessageHeader rh;
  std::memcpy(&rh, bytes->data(), sizeof rh);
  if (rh.type == static_cast<std::uint16_t>(wire::MessageType::kStatsReplyMemfd)) {
    // Too large for a datagram: the text is in the memfd that came with the reply.
    const int fd = conn_->TakeReceivedFd();
    const auto r = wire::BodyOf<wire::StatsReplyMemfd>(*bytes);
    absl::Status st = wire::FromReplyStatus(r.status);
    std::string text;
    if (st.ok() && fd < 0) st = absl::InternalError("ringd's large StatsReply came without its memfd");
    if (st.ok() && r.size > wire::kMaxStatsTextSize) {
      st = absl::InternalError(absl::StrCat("ringd's stats text is ", r.size, " bytes, over the ",
                                            wire::kMaxStatsTextSize, "-byte sanity limit"));
    }
    if (st.ok()) {
      text.resize(r.size);
      std::size_t off = 0;
      while (off < text.size()) {
        const ssize_t n = pread(fd, text.data() + off, text.size() - off, static_cast<off_t>(off));
        if (n <= 0) {
          st = absl::InternalError("ringd's stats memfd is shorter than its reply says");
          break;
        }
        off += static_cast<std::size_t>(n);
      }
    }
    if (fd >= 0) ::close(fd);
    PINRING_RETURN_IF_ERROR(st);
    return text;
  }
  wire::ReplyStatus rs;
  std::memcpy(&rs, bytes->data() + sizeof(wire::MessageHeader), sizeof rs);
  PINRING_RETURN_IF_ERROR(wire::FromReplyStatus(rs));
  const char* text = reinterpret_cast<const char*>(bytes->data()) + wire::kStatsReplyFixedSize;
  // Untrusted length: bounded by the datagram, cut at the first NUL if any.
  return std::string(text, strnlen(text, bytes->size() - wire::kStatsReplyFixedSize));
}

}  // namespace pinring
