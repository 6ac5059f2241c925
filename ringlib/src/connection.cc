#include "connection.h"

#include "wire/scm_rights.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pinring/status.h"

namespace pinring::internal {
namespace {

// poll(2) timeout in ms for `deadline`, rounded up so we never spin on a sub-millisecond rest.
int PollTimeoutMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)));
  return ms > 1'000'000 ? 1'000'000 : static_cast<int>(ms);
}

}  // namespace

absl::StatusOr<std::shared_ptr<Connection>> Connection::Open(const std::string& path,
                                                              absl::Duration request_timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrCat("socket path \"", path, "\" is empty or longer than ",
                                                   sizeof addr.sun_path - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return pinring::LastErrnoStatus("socket(AF_UNIX, SOCK_SEQPACKET)");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED) {
      // ENOENT: no socket file; ECONNREFUSED: a stale socket file nobody listens on.
      return absl::UnavailableError(absl::StrCat(
          "ringd is not running at ", path, ": start it with `systemctl start ringd` or `ringd --socket=",
          path, "` (connect: ", std::strerror(err), ")"));
    }
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(absl::StrCat("permission denied on ", path,
                                                      ": add your user to the `pinring` group "
                                                      "(then log in again) (connect: ",
                                                      std::strerror(err), ")"));
    }
    return pinring::ErrnoToStatus(err, absl::StrCat("connect(", path, ")"));
  }
  return std::shared_ptr<Connection>(new Connection(fd, path, request_timeout));
}

Connection::~Connection() {
  ::close(fd_);
  if (received_fd_ >= 0) ::close(received_fd_);
}

int Connection::TakeReceivedFd() {
  absl::MutexLock l(&mu_);
  return std::exchange(received_fd_, -1);
}

void Connection::MarkDead(std::string reason) {
  {
    absl::MutexLock l(&reason_mu_);
    if (dead_reason_.empty()) dead_reason_ = std::move(reason);
  }
  // Release: pairs with dead()'s acquire, so a reader seeing `true` also sees the reason.
  dead_.store(true, std::memory_order_release);
}

absl::Status Connection::DeadStatus() const {
  absl::MutexLock l(&reason_mu_);
  return absl::UnavailableError(absl::StrCat("ringd stopped (", dead_reason_, ") at ", path_,
                                             "; reconnect with pinring::Client::Connect"));
}

absl::StatusOr<std::vector<std::byte>> Connection::ReceiveLocked(absl::Time deadline,
                                                                  bool nonblocking) {
  if (!nonblocking) {
    pollfd p{fd_, POLLIN, 0};
    int r;
    do {
      r = ::poll(&p, 1, PollTimeoutMs(deadline));
    } while (r < 0 && errno == EINTR);
    if (r < 0) return pinring::LastErrnoStatus("poll(ringd socket)");
    if (r == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("ringd at ", path_, " did not answer within ", absl::FormatDuration(timeout_)));
    }
  }
  std::vector<std::byte> buf(wire::kMaxMessageSize);
  // ringd sends an fd only with kStatsReplyMemfd; every fd that arrived is taken, that one kept
  // (received_fd_) and the rest closed, so none can leak.
  std::vector<int> got;
  bool truncated = false;
  const ssize_t n =
      wire::RecvWithFds(fd_, buf, &got, &truncated, nonblocking ? MSG_DONTWAIT : 0);
  if (n < 0) {
    const int err = errno;
    if (err == ECONNRESET || err == ENOTCONN) {
      MarkDead("the control socket was reset");
      return DeadStatus();
    }
    return pinring::ErrnoToStatus(err, "recvmsg(ringd socket)");
  }
  if (n == 0) {
    MarkDead("ringd closed the control socket");
    return DeadStatus();
  }
  auto close_all = [&got] {
    for (int f : got) ::close(f);
    got.clear();
  };
  if (truncated) {
    close_all();
    return absl::InternalError("ringd sent a truncated control message");
  }
  buf.resize(static_cast<std::size_t>(n));
  auto header = wire::ParseHeader(buf, got.size());
  if (!header.ok()) {
    close_all();
    return header.status();
  }
  if (header->type == static_cast<std::uint16_t>(wire::MessageType::kStatsReplyMemfd)) {
    if (received_fd_ >= 0) ::close(received_fd_);
    received_fd_ = got.front();  // ParseHeader checked: exactly one
    got.clear();
  }
  close_all();
  if (header->type == static_cast<std::uint16_t>(wire::MessageType::kShutdownNotice)) {
    const auto notice = wire::BodyOf<wire::ShutdownNotice>(buf);
    const absl::Status why = wire::FromReplyStatus(notice.reason);
    MarkDead(why.message().empty() ? std::string("ShutdownNotice")
                                   : absl::StrCat("ShutdownNotice: ", why.message()));
    return DeadStatus();
  }
  return buf;
}

absl::StatusOr<std::vector<std::byte>> Connection::Call(wire::MessageType type, const void* body,
                                                        std::size_t body_size,
                                                        std::span<const int> fds,
                                                        wire::MessageType reply_type) {
  absl::MutexLock l(&mu_);
  if (dead()) return DeadStatus();
  const std::uint32_t seq = next_seq_++;
  std::vector<std::byte> out(sizeof(wire::MessageHeader) + body_size);
  const wire::MessageHeader h{wire::kMagic, wire::kVersion, static_cast<std::uint16_t>(type),
                              static_cast<std::uint32_t>(out.size()), seq};
  std::memcpy(out.data(), &h, sizeof h);
  if (body_size != 0) std::memcpy(out.data() + sizeof h, body, body_size);

  if (fds.size() > wire::kMaxFdsPerMessage) return absl::InternalError("too many fds");
  // MSG_NOSIGNAL: a dead ringd must surface as EPIPE -> Unavailable, not kill us with SIGPIPE.
  const ssize_t n = wire::SendWithFds(fd_, out.data(), out.size(), fds, MSG_NOSIGNAL);
  if (n < 0) {
    const int err = errno;
    if (err == EPIPE || err == ECONNRESET || err == ENOTCONN) {
      // ringd may have said why before it closed (a ShutdownNotice naming a limit): read it.
      (void)ReceiveLocked(absl::InfinitePast(), /*nonblocking=*/true);
      MarkDead("the control socket is closed");
      return DeadStatus();
    }
    return pinring::ErrnoToStatus(err, "sendmsg(ringd socket)");
  }

  const absl::Time deadline = absl::Now() + timeout_;
  while (true) {
    auto reply = ReceiveLocked(deadline, /*nonblocking=*/false);
    if (!reply.ok()) return reply.status();
    wire::MessageHeader rh;
    std::memcpy(&rh, reply->data(), sizeof rh);
    if (rh.seq != seq) continue;  // a stale reply to a request that timed out earlier
    if (rh.type != static_cast<std::uint16_t>(reply_type) &&
        !(reply_type == wire::MessageType::kStatsReply &&
          rh.type == static_cast<std::uint16_t>(wire::MessageType::kStatsReplyMemfd))) {
      return absl::InternalError(absl::StrCat("ringd answered request type ",
                                              static_cast<int>(type), " with message type ",
                                              rh.type, ", expected ",
                                              static_cast<int>(reply_type)));
    }
    return reply;
  }
}

void Connection::PollIncoming() {
  if (dead()) return;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return;
  // Readable or hung up. Whoever holds mu_ is inside Call() and will read the socket itself
  // (and notice a notice or EOF there), so blocking on mu_ here is brief.
  absl::MutexLock l(&mu_);
  while (!dead()) {
    pollfd q{fd_, POLLIN, 0};
    if (::poll(&q, 1, 0) <= 0) return;
    auto msg = ReceiveLocked(absl::InfinitePast(), /*nonblocking=*/true);
    if (!msg.ok()) {
      if (absl::IsUnavailable(msg.status())) return;  // marked dead, or EAGAIN after a race
      MarkDead(absl::StrCat("unreadable control message: ", msg.status().message()));
      return;
    }
    // Anything else is a reply nobody waits for any more; drop it.
  }
}

}  // namespace pinring::internal
