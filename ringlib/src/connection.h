// The control channel to ringd: one SOCK_SEQPACKET socket, request/reply with sequence numbers,
// SCM_RIGHTS for file descriptors, and the one place that learns ringd stopped.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "wire/wire_protocol.h"

namespace pinring::internal {

class Connection {
 public:
  // Connects to `path`. Errors name the fix (see Client::Connect). Does not handshake.
  static absl::StatusOr<std::shared_ptr<Connection>> Open(const std::string& path,
                                                          absl::Duration request_timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends one request (`body` of `type`, with `fds` as SCM_RIGHTS; the fds stay owned by the
  // caller) and waits for the reply of `reply_type` with the same seq. Returns the whole reply
  // datagram, already validated by wire::ParseHeader. A ShutdownNotice or EOF marks the
  // connection dead and returns Unavailable.
  absl::StatusOr<std::vector<std::byte>> Call(wire::MessageType type, const void* body,
                                              std::size_t body_size, std::span<const int> fds,
                                              wire::MessageType reply_type)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Typed convenience over Call for fixed-size replies.
  template <typename Reply, typename Request>
  absl::StatusOr<Reply> CallFixed(wire::MessageType type, const Request& req,
                                  std::span<const int> fds, wire::MessageType reply_type) {
    auto bytes = Call(type, &req, sizeof req, fds, reply_type);
    if (!bytes.ok()) return bytes.status();
    return wire::BodyOf<Reply>(*bytes);
  }

  // Non-blocking check of the socket: consumes a pending ShutdownNotice or EOF and marks the
  // connection dead. Cheap when nothing is pending (one poll(2) with zero timeout).
  void PollIncoming() ABSL_LOCKS_EXCLUDED(mu_);

  // True once ringd said it stops or the socket closed. Acquire pairs with MarkDead's release so
  // the reason string is visible to whoever sees the flag.
  bool dead() const { return dead_.load(std::memory_order_acquire); }

  // Unavailable("ringd stopped (...); reconnect ..."). REQUIRES: dead().
  absl::Status DeadStatus() const ABSL_LOCKS_EXCLUDED(reason_mu_);

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  // The fd the last kStatsReplyMemfd carried (the caller owns it now), or -1.
  int TakeReceivedFd() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Connection(int fd, std::string path, absl::Duration timeout)
      : fd_(fd), path_(std::move(path)), timeout_(timeout) {}

  // Receives one datagram (blocking up to `deadline`), validates framing, closes any fds but the
  // one of a kStatsReplyMemfd (kept in received_fd_).
  // Handles a ShutdownNotice by marking dead. Returns the datagram.
  absl::StatusOr<std::vector<std::byte>> ReceiveLocked(absl::Time deadline, bool nonblocking)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkDead(std::string reason) ABSL_LOCKS_EXCLUDED(reason_mu_);

  const int fd_;
  const std::string path_;
  const absl::Duration timeout_;
  absl::Mutex mu_;  // serializes requests and reads of the socket
  std::uint32_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  int received_fd_ ABSL_GUARDED_BY(mu_) = -1;  // see TakeReceivedFd
  std::atomic<bool> dead_{false};
  mutable absl::Mutex reason_mu_;
  std::string dead_reason_ ABSL_GUARDED_BY(reason_mu_);
};

}  // namespace pinring::internal
