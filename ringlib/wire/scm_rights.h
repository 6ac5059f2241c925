// Datagrams with file descriptors attached (SCM_RIGHTS), sent and received: the one
// implementation the client library (memfds and eventfds to ringd, the stats memfd back), the raw
// protocol test client and the control fuzzer all use. (ringd's receiving side is service/client_session.cc, which treats every fd it
// gets as hostile.)
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

namespace pinring::wire {

// At most this many fds in one datagram here: more than ringd accepts (kMaxFdsPerMessage), so
// tests can send too many.
inline constexpr std::size_t kMaxScmFds = 16;

// sendmsg(2) of [data, +len) with `fds` attached, retried on EINTR. Returns sendmsg's result: the
// bytes sent, or -1 with errno (E2BIG for more than kMaxScmFds fds).
inline ssize_t SendWithFds(int sock, const void* data, std::size_t len, std::span<const int> fds,
                           int flags) {
  if (fds.size() > kMaxScmFds) {
    errno = E2BIG;
    return -1;
  }
  iovec iov{const_cast<void*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxScmFds)] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, flags);
  } while (n < 0 && errno == EINTR);
  return n;
}

// recvmsg(2) of one datagram into `buf`, retried on EINTR, with MSG_CMSG_CLOEXEC. Every fd that
// came with it (SCM_RIGHTS, up to kMaxScmFds) is appended to *fds: the caller owns all of them
// and must close those it does not keep, so none can leak. *truncated: the data or the fds did
// not fit (MSG_TRUNC / MSG_CTRUNC). Returns the bytes received, 0 at end of stream, or -1 with
// errno.
inline ssize_t RecvWithFds(int sock, std::span<std::byte> buf, std::vector<int>* fds,
                           bool* truncated, int flags) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxScmFds)];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      fds->push_back(f);
    }
  }
  *truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  return n;
}

}  // namespace pinring::wire
