// A minimal client that speaks ringd's wire protocol by hand: socket, memfds, Hello /
// CreateQueue / RegisterRegion, and the client halves of the ring protocols. Independent of
// ringlib's Client so the daemon can be tested on its own, and so tests can send what no
// well-behaved client would (truncated messages, wrong fds, unsealed memfds, corrupt indices).
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pinring/descriptors.h"
#include "pinring/fork_mode.h"
#include "pinring/ring_format.h"
#include "pinring/spsc_ring.h"
#include "wire/scm_rights.h"
#include "wire/wire_protocol.h"

namespace pinring::testing {

using wire::MessageType;

class RawClient {
 public:
  static absl::StatusOr<std::unique_ptr<RawClient>> Connect(const std::string& path) {
    auto c = std::unique_ptr<RawClient>(new RawClient());
    c->fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (c->fd_ < 0) return absl::InternalError("socket");
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (connect(c->fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      return absl::UnavailableError(absl::StrCat("connect(", path, "): ", std::strerror(errno)));
    }
    return c;
  }
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

  absl::Status SendRaw(const void* data, std::size_t len, std::span<const int> fds = {}) {
    if (wire::SendWithFds(fd_, data, len, fds, MSG_NOSIGNAL) != static_cast<ssize_t>(len)) {
      return absl::UnavailableError(absl::StrCat("sendmsg: ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }

  template <typename Body>
  absl::Status Send(MessageType type, const Body& body, std::span<const int> fds = {}) {
    auto m = wire::MakeMessage(type, ++seq_, body);
    return SendRaw(&m, sizeof m, fds);
  }

  // One datagram; Unavailable on EOF (ringd closed us), DeadlineExceeded on timeout.
  absl::StatusOr<std::vector<std::byte>> Recv(absl::Duration timeout = absl::Seconds(10)) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) {
      return absl::DeadlineExceededError("no message from ringd");
    }
    std::vector<std::byte> buf(wire::kMaxMessageSize);
    const ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n <= 0) return absl::UnavailableError("ringd closed the connection");
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }

  // Sends `req` and returns the body of the reply of type `reply_type`.
  template <typename Reply, typename Body>
  absl::StatusOr<Reply> Call(MessageType type, const Body& body, MessageType reply_type,
                             std::span<const int> fds = {}) {
    if (absl::Status s = Send(type, body, fds); !s.ok()) return s;
    auto d = Recv();
    if (!d.ok()) return d.status();
    auto h = wire::ParseHeader(*d, 0);
    if (!h.ok()) return h.status();
    if (h->type != static_cast<std::uint16_t>(reply_type)) {
      return absl::InternalError(absl::StrCat("reply type ", h->type));
    }
    if (h->seq != seq_) return absl::InternalError("reply seq mismatch");
    return wire::BodyOf<Reply>(*d);
  }

  absl::StatusOr<wire::HelloReply> Hello(const std::string& name = "raw-test") {
    wire::Hello h{};
    h.min_version = h.max_version = wire::kVersion;
    wire::SetText(h.name, name);
    auto r = Call<wire::HelloReply>(MessageType::kHello, h, MessageType::kHelloReply);
    if (!r.ok()) return r.status();
    if (absl::Status s = wire::FromReplyStatus(r->status); !s.ok()) return s;
    return r;
  }

  // StatsReply JSON text.
  absl::StatusOr<std::string> Stats() {
    wire::StatsRequest req{};
    if (absl::Status s = Send(MessageType::kStatsRequest, req); !s.ok()) return s;
    auto d = Recv();
    if (!d.ok()) return d.status();
    auto h = wire::ParseHeader(*d, 0);
    if (!h.ok()) return h.status();
    wire::ReplyStatus st;
    std::memcpy(&st, d->data() + sizeof(wire::MessageHeader), sizeof st);
    if (absl::Status s = wire::FromReplyStatus(st); !s.ok()) return s;
    return std::string(reinterpret_cast<const char*>(d->data()) + wire::kStatsReplyFixedSize,
                       d->size() - wire::kStatsReplyFixedSize);
  }

  // True when ringd closes the connection within `timeout` (messages before EOF are skipped).
  bool WaitClosed(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      auto d = Recv(deadline - absl::Now());
      if (!d.ok()) return absl::IsUnavailable(d.status());
    }
    return false;
  }

 private:
  RawClient() = default;
  int fd_ = -1;
  std::uint32_t seq_ = 0;
};

// A queue memfd laid out per ring_format.h, plus the client's ring views and eventfds.
struct TestQueue {
  struct Options {
    std::uint32_t sq_entries = 64;
    std::uint32_t cq_entries = 64;
    wire::DoorbellMode doorbell = wire::DoorbellMode::kBusyPoll;
    wire::CompletionWait wait = wire::CompletionWait::kSpin;
    std::uint32_t adaptive_poll_us = 0;
    bool seal = true;
    std::int64_t size_delta = 0;  // memfd size = layout size + delta (hostile tests)
    bool corrupt_layout = false;
  };

  static absl::StatusOr<std::unique_ptr<TestQueue>> Make(const Options& o) {
    auto q = std::make_unique<TestQueue>();
    q->opts = o;
    q->layout = ComputeQueueLayout(o.sq_entries, o.cq_entries);
    q->size = q->layout.total_size + o.size_delta;
    q->memfd = memfd_create("pinring-test-queue", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (q->memfd < 0 || ftruncate(q->memfd, static_cast<off_t>(q->size)) != 0) {
      return absl::InternalError("memfd");
    }
    if (o.seal && fcntl(q->memfd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) {
      return absl::InternalError("seal");
    }
    q->map = mmap(nullptr, q->layout.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, q->memfd, 0);
    if (q->map == MAP_FAILED) {
      q->map = nullptr;
      return absl::InternalError("mmap");
    }
    QueueLayout l = q->layout;
    if (o.corrupt_layout) l.cq_offset += kPageSize;
    std::memcpy(q->map, &l, sizeof l);
    q->hdr = static_cast<QueueHeader*>(q->map);
    auto* base = static_cast<std::byte*>(q->map);
    q->sq = SubmissionProducer(reinterpret_cast<Descriptor*>(base + q->layout.sq_offset),
                               o.sq_entries, &q->hdr->sq_tail.value, &q->hdr->sq_head.value);
    q->cq = CompletionConsumer(reinterpret_cast<const Completion*>(base + q->layout.cq_offset),
                               o.cq_entries, &q->hdr->cq_head.value, &q->hdr->cq_tail.value);
    q->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    q->completion = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return q;
  }

  ~TestQueue() {
    if (map != nullptr) munmap(map, layout.total_size);
    for (int fd : {memfd, doorbell, completion}) {
      if (fd >= 0) close(fd);
    }
  }

  absl::StatusOr<wire::CreateQueueReply> CreateRaw(RawClient& c) {
    wire::CreateQueue m{};
    m.sq_entries = opts.sq_entries;
    m.cq_entries = opts.cq_entries;
    m.doorbell_mode = static_cast<std::uint8_t>(opts.doorbell);
    m.completion_wait = static_cast<std::uint8_t>(opts.wait);
    m.adaptive_poll_us = opts.adaptive_poll_us;
    const int fds[3] = {memfd, doorbell, completion};
    return c.Call<wire::CreateQueueReply>(MessageType::kCreateQueue, m,
                                          MessageType::kCreateQueueReply, fds);
  }

  absl::Status Create(RawClient& c) {
    auto r = CreateRaw(c);
    if (!r.ok()) return r.status();
    if (absl::Status s = wire::FromReplyStatus(r->status); !s.ok()) return s;
    id = r->queue_id;
    return absl::OkStatus();
  }

  // Client half of the doorbell protocol: publish the tail (release), fence (seq_cst), then ring
  // the doorbell only if ringd said it sleeps.
  bool Submit(std::span<const Descriptor> ds) {
    if (sq.Reserve(static_cast<std::uint32_t>(ds.size())) < ds.size()) return false;
    for (std::size_t i = 0; i < ds.size(); ++i) sq.Slot(static_cast<std::uint32_t>(i)) = ds[i];
    sq.Commit(static_cast<std::uint32_t>(ds.size()));
    // Pairs with ringd's fence between setting need-wakeup and re-reading sq_tail.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if ((hdr->sq_flags.value.load(std::memory_order_relaxed) & kSqNeedWakeup) != 0) {
      const std::uint64_t one = 1;
      if (write(doorbell, &one, sizeof one) == sizeof one) ++doorbells_rung;
    }
    return true;
  }
  bool Submit(const Descriptor& d) { return Submit(std::span<const Descriptor>(&d, 1)); }

  // Waits for `n` completions. Spin mode polls; block mode sets kCqWaiting, fences, re-checks,
  // then sleeps on the completion eventfd. Stops early if ringd sets queue_error.
  absl::StatusOr<std::vector<Completion>> Reap(std::uint32_t n,
                                               absl::Duration timeout = absl::Seconds(30)) {
    std::vector<Completion> out;
    const absl::Time deadline = absl::Now() + timeout;
    while (out.size() < n) {
      const std::uint32_t got = cq.Peek(n - static_cast<std::uint32_t>(out.size()));
      for (std::uint32_t i = 0; i < got; ++i) out.push_back(cq.CopyOut(i));
      if (got > 0) {
        cq.Release(got);
        continue;
      }
      if (cq.corrupt()) return absl::InternalError("cq corrupt (client view)");
      if (error() != 0) {
        return absl::AbortedError(absl::StrCat("queue_error ", error(), " after ", out.size()));
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat("got ", out.size(), " of ", n));
      }
      if (opts.wait == wire::CompletionWait::kBlock) {
        hdr->cq_flags.value.store(kCqWaiting, std::memory_order_relaxed);
        // Pairs with ringd's fence between publishing cq_tail and reading cq_flags.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (cq.Peek(1) == 0 && error() == 0) {
          pollfd p{completion, POLLIN, 0};
          poll(&p, 1, 100);
          std::uint64_t v;
          if (read(completion, &v, sizeof v) == sizeof v) ++wakeups;
        }
        hdr->cq_flags.value.store(0, std::memory_order_relaxed);
      } else {
        sched_yield();
      }
    }
    return out;
  }

  std::uint32_t error() const {
    return hdr->queue_error.value.load(std::memory_order_acquire);
  }

  Options opts;
  QueueLayout layout{};
  std::uint64_t size = 0;
  int memfd = -1, doorbell = -1, completion = -1;
  void* map = nullptr;
  QueueHeader* hdr = nullptr;
  SubmissionProducer sq;
  CompletionConsumer cq;
  std::uint32_t id = 0;
  std::uint64_t doorbells_rung = 0;
  std::uint64_t wakeups = 0;
};

// A data region: a sealed memfd the test maps too.
struct TestRegion {
  static absl::StatusOr<std::unique_ptr<TestRegion>> Make(std::size_t size, bool seal = true,
                                                          std::size_t file_size = 0) {
    auto r = std::make_unique<TestRegion>();
    r->size = size;
    r->fd = memfd_create("pinring-test-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    const std::size_t fsz = file_size != 0 ? file_size : size;
    if (r->fd < 0 || ftruncate(r->fd, static_cast<off_t>(fsz)) != 0) {
      return absl::InternalError("memfd");
    }
    if (seal && fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) return absl::InternalError("seal");
    void* p = mmap(nullptr, fsz, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (p == MAP_FAILED) return absl::InternalError("mmap");
    r->data = static_cast<std::byte*>(p);
    r->mapped = fsz;
    return r;
  }
  ~TestRegion() {
    if (data != nullptr) munmap(data, mapped);
    if (fd >= 0) close(fd);
  }

  absl::StatusOr<wire::RegisterRegionReply> RegisterRaw(RawClient& c, ForkMode mode,
                                                        std::uint64_t size_override = 0) {
    wire::RegisterRegion m{};
    m.size = size_override != 0 ? size_override : size;
    m.fork_mode = static_cast<std::uint8_t>(mode);
    const int fds[1] = {fd};
    return c.Call<wire::RegisterRegionReply>(MessageType::kRegisterRegion, m,
                                             MessageType::kRegisterRegionReply, fds);
  }
  absl::Status Register(RawClient& c, ForkMode mode = ForkMode::kShared) {
    auto r = RegisterRaw(c, mode);
    if (!r.ok()) return r.status();
    if (absl::Status s = wire::FromReplyStatus(r->status); !s.ok()) return s;
    handle = r->handle;
    return absl::OkStatus();
  }
  std::span<const std::byte> bytes(std::size_t off, std::size_t len) const {
    return {data + off, len};
  }

  int fd = -1;
  std::byte* data = nullptr;
  std::size_t size = 0;
  std::size_t mapped = 0;
  std::uint32_t handle = 0;
};

// Descriptor builders in the argument order these tests read best (user_data first); the
// descriptors themselves come from ringlib's public builders, so there is one definition of each.
inline Descriptor CopyDesc(std::uint64_t ud, std::uint32_t src, std::uint64_t so,
                           std::uint32_t dst, std::uint64_t dof, std::uint64_t len) {
  return MakeCopy(src, so, dst, dof, len, ud);
}
inline Descriptor ChecksumDesc(std::uint64_t ud, std::uint32_t src, std::uint64_t so,
                               std::uint64_t len) {
  return MakeChecksum(src, so, len, ud);
}
inline Descriptor FillDesc(std::uint64_t ud, std::uint32_t dst, std::uint64_t off,
                           std::uint64_t len, std::uint64_t value, bool pattern64 = false) {
  return pattern64 ? MakeFillPattern64(dst, off, len, value, ud)
                   : MakeFill(dst, off, len, static_cast<std::uint8_t>(value), ud);
}

}  // namespace pinring::testing
