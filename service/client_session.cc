#include "service/client_session.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "pinring/fork_mode.h"
#include "pinring/ring_format.h"
#include "pinring/status.h"
#include "service/log.h"
#include "service/untrusted_memfd.h"

namespace pinring::ringd {

using wire::MessageType;

namespace {

// A memfd holding `text`, sealed against every change, for a reply too large for a datagram.
absl::StatusOr<int> MakeSealedTextMemfd(const std::string& text) {
  UniqueFd fd(memfd_create("pinring-stats", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return pinring::LastErrnoStatus("memfd_create(stats)");
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = pwrite(fd.get(), text.data() + off, text.size() - off, static_cast<off_t>(off));
    if (n <= 0) return pinring::LastErrnoStatus("write(stats memfd)");
    off += static_cast<std::size_t>(n);
  }
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    return pinring::LastErrnoStatus("fcntl(F_ADD_SEALS, stats memfd)");
  }
  return fd.release();
}

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ClientSession::ClientSession(std::uint64_t id, UniqueFd socket, PeerCred cred, bool admin,
                             absl::Status refusal, const Config& config, Backend* backend,
                             QueueScheduler* scheduler, TenantTable* tenants)
    : id_(id),
      socket_(std::move(socket)),
      cred_(cred),
      admin_(admin),
      refusal_(std::move(refusal)),
      accepted_ns_(NowNs()),
      config_(config),
      backend_(backend),
      scheduler_(scheduler),
      tenants_(tenants),
      connection_charged_(refusal_.ok()),
      regions_(config.limits.max_regions) {}

ClientSession::~ClientSession() { Teardown(); }

bool ClientSession::SendWithFd(const void* data, std::size_t len, int fd) {
  if (send_failed_) return false;
  iovec iov{const_cast<void*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  // As Send: never blocks, never raises SIGPIPE.
  if (sendmsg(socket_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL) != static_cast<ssize_t>(len)) {
    RINGD_LOG_LIMITED(kInfo, "client ", id_, " (pid ", cred_.pid, "): reply of ", len,
                      " bytes not sent: ", std::strerror(errno));
    send_failed_ = true;
    return false;
  }
  return true;
}

bool ClientSession::Send(const void* data, std::size_t len) {
  if (send_failed_) return false;
  // MSG_DONTWAIT: a client that does not read its replies must not block the event loop.
  // MSG_NOSIGNAL: a client that went away is an error code, not a SIGPIPE.
  const ssize_t n = send(socket_.get(), data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(len)) {
    RINGD_LOG_LIMITED(kInfo, "client ", id_, " (pid ", cred_.pid, "): reply of ", len,
                      " bytes not sent: ", n < 0 ? std::strerror(errno) : "short send");
    send_failed_ = true;
    return false;
  }
  return true;
}

bool ClientSession::OnReadable() {
  // One extra byte beyond the largest legal datagram: a longer one arrives with MSG_TRUNC.
  alignas(8) static thread_local std::byte buf[wire::kMaxMessageSize + 1];
  // Room for exactly kMaxFdsPerMessage fds; more sets MSG_CTRUNC and the kernel closes the rest.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * wire::kMaxFdsPerMessage)];
  while (true) {
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(socket_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return !send_failed_;
      if (errno == EINTR) continue;
      return false;
    }
    // Take ownership of every received fd before any check, so every path closes them.
    std::vector<UniqueFd> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fds.emplace_back(fd);
        }
      }
    }
    if (n == 0) return false;  // orderly shutdown by the peer
    if ((msg.msg_flags & MSG_TRUNC) != 0) {
      RINGD_LOG_LIMITED(kWarning, "client ", id_, " (pid ", cred_.pid,
                        "): oversized datagram; disconnecting");
      return false;
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) {
      RINGD_LOG_LIMITED(kWarning, "client ", id_, " (pid ", cred_.pid,
                        "): more fds than any message carries (MSG_CTRUNC); disconnecting");
      return false;
    }
    const std::span<const std::byte> datagram(buf, static_cast<std::size_t>(n));
    absl::StatusOr<wire::MessageHeader> h = wire::ParseHeader(datagram, fds.size());
    if (!h.ok()) {
      // Framing errors: we cannot even tell which reply the peer expects. Disconnect; ringd and
      // every other client carry on.
      RINGD_LOG_LIMITED(kWarning, "client ", id_, " (pid ", cred_.pid, "): ",
                        h.status().message(), "; disconnecting");
      return false;
    }
    Dispatch(*h, datagram, fds);
    if (send_failed_) return false;
  }
}

void ClientSession::Dispatch(const wire::MessageHeader& h, std::span<const std::byte> datagram,
                             std::vector<UniqueFd>& fds) {
  const auto type = static_cast<MessageType>(h.type);
  if (!refusal_.ok()) {
    // Over a limit (TenantTable): the answer to its Hello says which, then the connection
    // closes. Anything else gets no answer.
    if (type == MessageType::kHello) {
      wire::HelloReply r{};
      r.status = wire::ToReplyStatus(refusal_);
      Reply(MessageType::kHelloReply, h.seq, r);
    }
    send_failed_ = true;  // disconnect after this datagram
    return;
  }
  if (!hello_done_ && type != MessageType::kHello) {
    const absl::Status s = absl::FailedPreconditionError("send Hello first");
    switch (type) {
      case MessageType::kCreateQueue: {
        wire::CreateQueueReply r{};
        r.status = wire::ToReplyStatus(s);
        Reply(MessageType::kCreateQueueReply, h.seq, r);
        return;
      }
      case MessageType::kRegisterRegion: {
        wire::RegisterRegionReply r{};
        r.status = wire::ToReplyStatus(s);
        Reply(MessageType::kRegisterRegionReply, h.seq, r);
        return;
      }
      default:
        break;  // handled below with the normal reply type
    }
  }
  switch (type) {
    case MessageType::kHello: {
      wire::HelloReply r{};
      r.status = wire::ToReplyStatus(HandleHello(wire::BodyOf<wire::Hello>(datagram), r));
      Reply(MessageType::kHelloReply, h.seq, r);
      return;
    }
    case MessageType::kCreateQueue: {
      wire::CreateQueueReply r{};
      auto id = HandleCreateQueue(wire::BodyOf<wire::CreateQueue>(datagram), fds);
      r.status = wire::ToReplyStatus(id.status());
      if (id.ok()) r.queue_id = *id;
      Reply(MessageType::kCreateQueueReply, h.seq, r);
      return;
    }
    case MessageType::kDestroyQueue: {
      wire::DestroyQueueReply r{};
      r.status = wire::ToReplyStatus(
          hello_done_ ? HandleDestroyQueue(wire::BodyOf<wire::DestroyQueue>(datagram))
                      : absl::FailedPreconditionError("send Hello first"));
      Reply(MessageType::kDestroyQueueReply, h.seq, r);
      return;
    }
    case MessageType::kRegisterRegion: {
      wire::RegisterRegionReply r{};
      auto handle = HandleRegisterRegion(wire::BodyOf<wire::RegisterRegion>(datagram), fds);
      r.status = wire::ToReplyStatus(handle.status());
      if (handle.ok()) r.handle = *handle;
      r.pinned_bytes = pinned_bytes_;
      Reply(MessageType::kRegisterRegionReply, h.seq, r);
      return;
    }
    case MessageType::kDeregisterRegion: {
      wire::DeregisterRegionReply r{};
      r.status = wire::ToReplyStatus(
          hello_done_ ? HandleDeregisterRegion(wire::BodyOf<wire::DeregisterRegion>(datagram))
                      : absl::FailedPreconditionError("send Hello first"));
      Reply(MessageType::kDeregisterRegionReply, h.seq, r);
      return;
    }
    case MessageType::kStatsRequest:
      // The stats policy (ringd(8)): nothing before Hello; an admin peer sees everything, any
      // other peer only its own uid's clients.
      SendStats(h.seq, hello_done_ ? absl::OkStatus()
                                   : absl::FailedPreconditionError(
                                         "send Hello first: ringd answers StatsRequest only "
                                         "after the handshake"));
      return;
    default:
      // Reply types and ShutdownNotice are ringd -> client only.
      RINGD_LOG_LIMITED(kWarning, "client ", id_, ": sent message type ", h.type,
                        " that only ringd sends; disconnecting");
      send_failed_ = true;
      return;
  }
}

void ClientSession::SendStats(std::uint32_t seq, const absl::Status& refused) {
  const std::string json = refused.ok() ? scheduler_->StatsJson(admin_, cred_.uid) : "";
  const std::size_t max_text = wire::kMaxMessageSize - wire::kStatsReplyFixedSize;
  if (json.size() > max_text) {
    // Too large for one datagram (many clients): the text goes in a sealed memfd instead, so
    // ringctl works at any connection count.
    wire::StatsReplyMemfd r{};
    r.status = wire::ToReplyStatus(absl::OkStatus());
    r.size = json.size();
    auto fd = MakeSealedTextMemfd(json);
    if (!fd.ok()) {
      r.status = wire::ToReplyStatus(fd.status());
      r.size = 0;
      auto m = wire::MakeMessage(MessageType::kStatsReply, seq, r.status);
      Send(&m, sizeof m);
      return;
    }
    UniqueFd owned(*fd);
    auto m = wire::MakeMessage(MessageType::kStatsReplyMemfd, seq, r);
    SendWithFd(&m, sizeof m, owned.get());
    return;
  }
  std::vector<std::byte> out(wire::kStatsReplyFixedSize + json.size());
  wire::MessageHeader mh{wire::kMagic, wire::kVersion,
                         static_cast<std::uint16_t>(MessageType::kStatsReply),
                         static_cast<std::uint32_t>(out.size()), seq};
  const wire::ReplyStatus st = wire::ToReplyStatus(refused);
  std::memcpy(out.data(), &mh, sizeof mh);
  std::memcpy(out.data() + sizeof mh, &st, sizeof st);
  std::memcpy(out.data() + wire::kStatsReplyFixedSize, json.data(), json.size());
  Send(out.data(), out.size());
}

absl::Status ClientSession::HandleHello(const wire::Hello& m, wire::HelloReply& reply) {
  if (hello_done_) return absl::FailedPreconditionError("Hello sent twice");
  if (m.min_version > wire::kVersion || m.max_version < wire::kVersion) {
    return absl::FailedPreconditionError(absl::StrCat("client speaks protocol versions ",
                                                      m.min_version, "..", m.max_version,
                                                      "; ringd speaks ", wire::kVersion));
  }
  // Untrusted string: bounded copy, printable ASCII only (it ends up in logs and JSON).
  name_.clear();
  for (std::size_t i = 0; i < sizeof m.name && m.name[i] != '\0'; ++i) {
    const char c = m.name[i];
    name_.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  hello_done_ = true;
  reply.version = wire::kVersion;
  reply.client_id = static_cast<std::uint32_t>(id_);
  reply.limits = config_.limits.ToWire();
  if (config_.default_fork_mode_configured) {
    reply.default_fork_mode = static_cast<std::uint8_t>(config_.default_fork_mode);
    reply.default_fork_mode_set = wire::kDefaultForkModeSet;
  }
  wire::SetText(reply.backend, backend_->name());
  wire::SetText(reply.device, backend_->device());
  RINGD_LOG_LIMITED(kInfo, "client ", id_, " hello: pid ", cred_.pid, " uid ", cred_.uid,
                    " name '", name_, "'");
  return absl::OkStatus();
}

namespace {
// How ringd registers a queue's rings under --default_fork_mode. The rings are ringd's to write
// (completions) whatever the mode: pinned with full access, or on demand under odp.
ForkMode RingRegistrationMode(ForkMode default_mode) {
  return ForkModeIsOnDemand(default_mode) ? ForkMode::kOdp : ForkMode::kKernel;
}
}  // namespace

absl::Status ClientSession::CheckPinBudget(std::uint64_t more, absl::string_view what,
                                           ForkMode mode) const {
  if (ForkModeIsOnDemand(mode)) return absl::OkStatus();  // not pinned: not this limit
  const std::uint64_t limit = config_.limits.max_pinned_bytes;
  const std::uint64_t pinned = pinned_bytes_ - odp_bytes_;
  if (more > limit || pinned > limit - more) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " of ", more, " bytes would bring this client to ", pinned + more,
        " bytes pinned, over ringd --max_pinned_bytes=", limit,
        ": free some, or raise --max_pinned_bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::uint32_t> ClientSession::HandleCreateQueue(const wire::CreateQueue& m,
                                                               std::vector<UniqueFd>& fds) {
  if (!hello_done_) return absl::FailedPreconditionError("send Hello first");
  const ClientLimits& lim = config_.limits;
  for (std::uint32_t e : {m.sq_entries, m.cq_entries}) {
    if (!IsValidRingSize(e)) {
      return absl::InvalidArgumentError(absl::StrCat("ring size ", e, " is not a power of two in [",
                                                     kMinRingEntries, ", ", kMaxRingEntries, "]"));
    }
    if (e > lim.max_ring_entries) {
      return absl::ResourceExhaustedError(absl::StrCat("ring size ", e, " exceeds ringd --max_ring_entries=",
                                                       lim.max_ring_entries, "; raise it or use smaller rings"));
    }
  }
  if (m.doorbell_mode >= wire::kDoorbellModeCount) {
    return absl::InvalidArgumentError(absl::StrCat("unknown doorbell mode ", m.doorbell_mode));
  }
  if (m.completion_wait >= wire::kCompletionWaitCount) {
    return absl::InvalidArgumentError(absl::StrCat("unknown completion wait ", m.completion_wait));
  }
  if (m.reserved != 0) return absl::InvalidArgumentError("CreateQueue.reserved must be 0");
  if (m.adaptive_poll_us > kMaxAdaptivePollUs) {
    return absl::InvalidArgumentError(absl::StrCat("adaptive_poll_us ", m.adaptive_poll_us,
                                                   " > ", kMaxAdaptivePollUs));
  }
  if (queues_.size() >= lim.max_queues) {
    return absl::ResourceExhaustedError(absl::StrCat("queue limit reached (", queues_.size(),
                                                     "): destroy a queue, or raise ringd --max_queues"));
  }
  // ringd's own layout; the client's header must agree with it byte for byte.
  const QueueLayout layout = ComputeQueueLayout(m.sq_entries, m.cq_entries);
  const ForkMode ring_mode = RingRegistrationMode(config_.default_fork_mode);
  PINRING_RETURN_IF_ERROR(CheckPinBudget(layout.total_size, "the queue", ring_mode));
  // Limits across this uid's connections and the whole daemon; released by any failure below.
  PINRING_RETURN_IF_ERROR(tenants_->ChargeQueue(cred_.uid));
  if (absl::Status s = tenants_->ChargeBytes(cred_.uid, layout.total_size, "the queue"); !s.ok()) {
    tenants_->ReleaseQueue(cred_.uid);
    return s;
  }
  auto charged = absl::MakeCleanup([&] {
    tenants_->ReleaseQueue(cred_.uid);
    tenants_->ReleaseBytes(cred_.uid, layout.total_size);
  });
  PINRING_RETURN_IF_ERROR(CheckIsEventfd(fds[1].get(), "doorbell fd"));
  PINRING_RETURN_IF_ERROR(CheckIsEventfd(fds[2].get(), "completion fd"));
  PINRING_ASSIGN_OR_RETURN(ClientMapping mapping,
                           MapUntrustedMemfd(fds[0].get(), layout.total_size, SizeRule::kExact,
                                             PROT_READ | PROT_WRITE, "queue memfd"));
  fds[0].reset();  // the mapping keeps the memory; one fd fewer per queue (LimitNOFILE)
  QueueLayout theirs;
  std::memcpy(&theirs, mapping.addr(), sizeof theirs);  // read once, never again
  if (mapping.faulted()) {
    return absl::DataLossError("queue memfd: its first page could not be read (a hole punched "
                               "into a hugetlb memfd with no free huge page?)");
  }
  if (std::memcmp(&theirs, &layout, sizeof layout) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "queue header layout disagrees with ringd's ComputeQueueLayout(", m.sq_entries, ", ",
        m.cq_entries, ") (magic/version/offsets/total_size): write it with the same ring_format.h"));
  }
  if (config_.default_fork_mode == ForkMode::kDontFork) madvise(mapping.addr(), mapping.size(), MADV_DONTFORK);
  PINRING_ASSIGN_OR_RETURN(std::unique_ptr<BackendMemory> reg,
                           backend_->Register(mapping.addr(), mapping.size(), ring_mode));
  QueueParams p;
  p.id = next_queue_id_++;
  p.sq_entries = m.sq_entries;
  p.cq_entries = m.cq_entries;
  p.doorbell = static_cast<wire::DoorbellMode>(m.doorbell_mode);
  p.completion_wait = static_cast<wire::CompletionWait>(m.completion_wait);
  p.adaptive_poll_us = m.adaptive_poll_us != 0 ? m.adaptive_poll_us : config_.adaptive_poll_us;
  p.budget_bytes = config_.serve_budget_bytes != 0 ? config_.serve_budget_bytes
                                                   : backend_->default_serve_budget();
  auto q = std::make_unique<QueueServer>(p, std::move(mapping), std::move(reg), std::move(fds[1]),
                                         std::move(fds[2]), &regions_, backend_, &counters_);
  std::move(charged).Cancel();  // the queue holds the charges now; Destroy/Teardown release them
  pinned_bytes_ += layout.total_size;
  odp_bytes_ += q->odp_bytes();
  Counters::Add(counters_.queues_created);
  QueueServer* raw = q.get();
  queues_.emplace(p.id, std::move(q));
  scheduler_->Attach(*this, raw);
  return p.id;
}

absl::Status ClientSession::HandleDestroyQueue(const wire::DestroyQueue& m) {
  if (m.reserved != 0) return absl::InvalidArgumentError("DestroyQueue.reserved must be 0");
  auto it = queues_.find(m.queue_id);
  if (it == queues_.end()) return absl::NotFoundError(absl::StrCat("no queue ", m.queue_id));
  scheduler_->Detach(*this, it->second.get());
  pinned_bytes_ -= it->second->ring_bytes();
  odp_bytes_ -= it->second->odp_bytes();
  tenants_->ReleaseQueue(cred_.uid);
  tenants_->ReleaseBytes(cred_.uid, it->second->ring_bytes());
  queues_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::uint32_t> ClientSession::HandleRegisterRegion(const wire::RegisterRegion& m,
                                                                  std::vector<UniqueFd>& fds) {
  if (!hello_done_) return absl::FailedPreconditionError("send Hello first");
  if (m.reserved0 != 0 || m.reserved1 != 0) {
    return absl::InvalidArgumentError("RegisterRegion reserved fields must be 0");
  }
  if ((m.flags & ~wire::kRegionFlagsKnown) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("unknown region flags 0x", absl::Hex(m.flags)));
  }
  ForkMode mode;
  if (m.fork_mode == kForkModeDaemonDefault) {
    mode = config_.default_fork_mode;
  } else if (m.fork_mode < kForkModeCount) {
    mode = static_cast<ForkMode>(m.fork_mode);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown fork mode ", m.fork_mode));
  }
  if (m.size == 0) return absl::InvalidArgumentError("region size 0");
  if (m.size > config_.limits.max_region_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "region of ", m.size, " bytes exceeds ringd --max_region_bytes=",
        config_.limits.max_region_bytes, ": register smaller regions, or raise the flag"));
  }
  PINRING_RETURN_IF_ERROR(CheckPinBudget(m.size, "the region", mode));
  if (regions_.size() >= config_.limits.max_regions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "region limit reached (", config_.limits.max_regions,
        "): deregister one, or raise ringd --max_regions"));
  }
  PINRING_RETURN_IF_ERROR(tenants_->ChargeBytes(cred_.uid, m.size, "the region"));
  auto charged = absl::MakeCleanup([&] { tenants_->ReleaseBytes(cred_.uid, m.size); });
  auto r = std::make_unique<Region>();
  r->size = m.size;
  r->fork_mode = mode;
  r->flags = m.flags;
  r->device_writable = !ForkModeIsDeviceReadOnly(mode);
  // Mapped read-write even for readonly regions: ibv_reg_mr of a PROT_READ shared mapping fails
  // on some kernels (seen on 6.1 with rxe). The device-side read-only guarantee comes from the MR
  // access flags, the CPU-side one from the validator (kReadOnlyRegion). A write-sealed memfd
  // cannot be mapped writable: then read-only it is.
  auto mapped = MapUntrustedMemfd(fds[0].get(), m.size, SizeRule::kAtLeast,
                                  PROT_READ | PROT_WRITE, "region memfd");
  if (!mapped.ok() && !r->device_writable) {
    mapped = MapUntrustedMemfd(fds[0].get(), m.size, SizeRule::kAtLeast, PROT_READ,
                               "region memfd");
  }
  if (!mapped.ok()) return mapped.status();
  r->mapping = std::move(*mapped);
  r->base = r->mapping.bytes();
  fds[0].reset();  // the mapping keeps the memory (and BackingId its identity)
  if (mode == ForkMode::kDontFork &&
      madvise(r->mapping.addr(), r->mapping.size(), MADV_DONTFORK) != 0) {
    return pinring::LastErrnoStatus("madvise(MADV_DONTFORK) on the region");
  }
  PINRING_ASSIGN_OR_RETURN(r->backend_memory,
                           backend_->Register(r->mapping.addr(), r->mapping.size(), mode));
  const std::uint64_t odp = r->backend_memory->odp_bytes();
  PINRING_ASSIGN_OR_RETURN(std::uint32_t handle, regions_.Insert(std::move(r)));
  std::move(charged).Cancel();  // released by Deregister/Teardown
  pinned_bytes_ += m.size;
  odp_bytes_ += odp;
  Counters::Add(counters_.registrations);
  return handle;
}

absl::Status ClientSession::HandleDeregisterRegion(const wire::DeregisterRegion& m) {
  if (m.reserved != 0) return absl::InvalidArgumentError("DeregisterRegion.reserved must be 0");
  // Remove takes the table's writer lock: it waits for any poller batch using the region.
  PINRING_ASSIGN_OR_RETURN(std::unique_ptr<Region> r, regions_.Remove(m.handle));
  pinned_bytes_ -= r->size;
  odp_bytes_ -= r->backend_memory != nullptr ? r->backend_memory->odp_bytes() : 0;
  tenants_->ReleaseBytes(cred_.uid, r->size);
  Counters::Add(counters_.deregistrations);
  return absl::OkStatus();  // r: unpinned, unmapped, closed here
}

QueueServer* ClientSession::FindQueue(std::uint32_t queue_id) {
  auto it = queues_.find(queue_id);
  return it == queues_.end() ? nullptr : it->second.get();
}

ServeState ClientSession::ServePass(std::uint32_t queue_id) {
  QueueServer* q = FindQueue(queue_id);
  if (q == nullptr) return ServeState::kIdle;
  // One budgeted ServeOnce: the event loop comes back after every other ready queue and its own
  // control-plane work had their turn.
  const std::uint32_t n = q->ServeOnce();
  if (q->stopped()) return ServeState::kIdle;
  if (q->busy()) return ServeState::kMore;
  if (!q->HasSubmissions()) return ServeState::kIdle;
  return n > 0 ? ServeState::kMore : ServeState::kCqFull;
}

void ClientSession::NotifyShutdown(absl::string_view reason) {
  for (auto& [id, q] : queues_) {
    scheduler_->Detach(*this, q.get());
    q->Stop(QueueError::kDaemonStopping);
  }
  wire::ShutdownNotice n{};
  n.reason = wire::ToReplyStatus(absl::UnavailableError(reason));
  Reply(MessageType::kShutdownNotice, 0, n);
}

void ClientSession::Teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  // Queues first: once detached no poller reads the region table on their behalf.
  for (auto& [id, q] : queues_) {
    scheduler_->Detach(*this, q.get());
    tenants_->ReleaseQueue(cred_.uid);
  }
  queues_.clear();
  std::vector<std::unique_ptr<Region>> regions = regions_.RemoveAll();
  regions.clear();  // each: ibv_dereg_mr, munmap
  tenants_->ReleaseBytes(cred_.uid, pinned_bytes_);
  pinned_bytes_ = 0;
  odp_bytes_ = 0;
  if (connection_charged_) {
    tenants_->ReleaseConnection(cred_.uid);
    connection_charged_ = false;
  }
}

nlohmann::json ClientSession::ToJson() const {
  nlohmann::json j;
  j["id"] = id_;
  j["pid"] = cred_.pid;
  j["uid"] = cred_.uid;
  j["gid"] = cred_.gid;
  j["name"] = name_;
  j["registered_bytes"] = pinned_bytes_;
  std::uint64_t pinned = 0;
  std::uint64_t odp = 0;
  j["queues"] = nlohmann::json::array();
  for (const auto& [id, q] : queues_) {
    static constexpr const char* kModes[] = {"busy-poll", "eventfd", "adaptive"};
    const QueueParams& p = q->params();
    pinned += q->pinned_bytes();
    odp += q->odp_bytes();
    j["queues"].push_back({{"id", p.id},
                           {"sq_entries", p.sq_entries},
                           {"cq_entries", p.cq_entries},
                           {"ring_bytes", q->ring_bytes()},
                           {"doorbell", kModes[static_cast<int>(p.doorbell)]},
                           {"completion_wait", p.completion_wait == wire::CompletionWait::kBlock
                                                   ? "block"
                                                   : "spin"},
                           {"adaptive_poll_us", p.adaptive_poll_us},
                           {"completed", q->completed()},
                           {"error", static_cast<int>(q->error())}});
  }
  j["regions"] = nlohmann::json::array();
  {
    absl::ReaderMutexLock l(&regions_.mu());
    regions_.ForEachLocked([&](const Region& r) {
      pinned += r.pinned_bytes();
      const std::uint64_t r_odp = r.backend_memory != nullptr ? r.backend_memory->odp_bytes() : 0;
      odp += r_odp;
      j["regions"].push_back({{"handle", r.handle},
                              {"size", r.size},
                              {"pinned_bytes", r.pinned_bytes()},
                              {"odp_bytes", r_odp},
                              {"fork_mode", std::string(ForkModeName(r.fork_mode))},
                              {"device_writable", r.device_writable}});
    });
  }
  j["pinned_bytes"] = pinned;
  j["odp_bytes"] = odp;  // registered on demand: not pinned, not charged to RLIMIT_MEMLOCK
  j["counters"] = counters_.Snapshot().ToJson();
  return j;
}

}  // namespace pinring::ringd
