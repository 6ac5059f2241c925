// One connected client: its credentials, limits, regions, queues and counters, and the handlers of
// its control messages. Lives on the event-loop thread; only its queues are touched by pollers
// (through QueueServer, which reads the region table under its lock).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "wire/wire_protocol.h"
#include "service/backend.h"
#include "service/config.h"
#include "service/counters.h"
#include "service/queue_server.h"
#include "service/region_table.h"
#include "service/tenant_table.h"
#include "service/unique_fd.h"

namespace pinring::ringd {

class ClientSession;

// What a session needs from the daemon: somewhere to run its queues, and the global stats.
class QueueScheduler {
 public:
  virtual ~QueueScheduler() = default;
  // Starts serving `q` (poller for busy-poll/adaptive, the event loop for eventfd).
  virtual void Attach(ClientSession& c, QueueServer* q) = 0;
  // Stops serving `q`; when it returns no thread touches q any more.
  virtual void Detach(ClientSession& c, QueueServer* q) = 0;
  // Stats as JSON for a peer: everything for an admin, else only clients of `uid`.
  virtual std::string StatsJson(bool admin, uid_t uid) = 0;
};

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// What ServePass found.
enum class ServeState {
  kIdle,    // nothing left to do until the doorbell rings
  kMore,    // more work ready (or a large descriptor part-way): serve again next round
  kCqFull,  // submissions wait, but the client has not reaped: retry later
};

class ClientSession {
 public:
  // `admin`: root, ringd's uid or --admin_group (full stats, admin connection reserve).
  // `refusal`: not OK when the connection is over a limit: its Hello is answered with this
  // status and the connection closed. `tenants` outlives the session; the session releases what
  // it charged there.
  ClientSession(std::uint64_t id, UniqueFd socket, PeerCred cred, bool admin,
                absl::Status refusal, const Config& config, Backend* backend,
                QueueScheduler* scheduler, TenantTable* tenants);
  // REQUIRES: Teardown() was called.
  ~ClientSession();

  // Reads every datagram waiting on the socket and answers each. Returns false when the client
  // must be disconnected (EOF, socket error, framing error, a reply it will not take).
  bool OnReadable();

  // Detaches and destroys every queue (pollers are synchronised by Detach), then deregisters and
  // unmaps every region and closes every fd. Idempotent.
  void Teardown();

  // Daemon shutdown: every queue answers pending descriptors with kShuttingDown, gets
  // queue_error = kDaemonStopping and its completion eventfd signalled; then a ShutdownNotice.
  void NotifyShutdown(absl::string_view reason);

  // One budgeted serving pass of an eventfd-mode queue (the event loop interleaves the ready
  // queues of every client this way).
  ServeState ServePass(std::uint32_t queue_id);
  QueueServer* FindQueue(std::uint32_t queue_id);

  nlohmann::json ToJson() const;
  CountersSnapshot CountersNow() const { return counters_.Snapshot(); }

  std::uint64_t id() const { return id_; }
  int socket_fd() const { return socket_.get(); }
  const PeerCred& cred() const { return cred_; }
  std::uint64_t pinned_bytes() const { return pinned_bytes_; }  // registered, odp included
  std::uint64_t odp_bytes() const { return odp_bytes_; }        // registered on demand
  bool hello_done() const { return hello_done_; }
  bool admin() const { return admin_; }
  bool refused() const { return !refusal_.ok(); }
  std::int64_t accepted_ns() const { return accepted_ns_; }

 private:
  // One request; the reply is built by the handler. Errors become the reply's status.
  void Dispatch(const wire::MessageHeader& h, std::span<const std::byte> datagram,
                std::vector<UniqueFd>& fds);
  absl::Status HandleHello(const wire::Hello& m, wire::HelloReply& reply);
  absl::StatusOr<std::uint32_t> HandleCreateQueue(const wire::CreateQueue& m,
                                                  std::vector<UniqueFd>& fds);
  absl::Status HandleDestroyQueue(const wire::DestroyQueue& m);
  absl::StatusOr<std::uint32_t> HandleRegisterRegion(const wire::RegisterRegion& m,
                                                     std::vector<UniqueFd>& fds);
  absl::Status HandleDeregisterRegion(const wire::DeregisterRegion& m);
  // --max_pinned_bytes: OK when `more` pinned bytes fit. On-demand (odp) registrations pin
  // nothing and are not checked here (the uid's registered-bytes limit still applies).
  absl::Status CheckPinBudget(std::uint64_t more, absl::string_view what, ForkMode mode) const;
  void SendStats(std::uint32_t seq, const absl::Status& refused);

  // Sends one datagram without blocking. False when the client cannot take it.
  bool Send(const void* data, std::size_t len);
  // The same, carrying `fd` as SCM_RIGHTS (the caller keeps its copy).
  bool SendWithFd(const void* data, std::size_t len, int fd);
  template <typename Body>
  bool Reply(wire::MessageType type, std::uint32_t seq, const Body& body) {
    auto m = wire::MakeMessage(type, seq, body);
    return Send(&m, sizeof m);
  }

  const std::uint64_t id_;
  UniqueFd socket_;
  const PeerCred cred_;
  const bool admin_;
  const absl::Status refusal_;
  const std::int64_t accepted_ns_;
  const Config& config_;
  Backend* backend_;
  QueueScheduler* scheduler_;
  TenantTable* tenants_;
  bool connection_charged_ = false;
  bool hello_done_ = false;
  bool send_failed_ = false;
  bool torn_down_ = false;
  std::string name_;
  Counters counters_;
  RegionTable regions_;
  absl::flat_hash_map<std::uint32_t, std::unique_ptr<QueueServer>> queues_;
  std::uint32_t next_queue_id_ = 1;
  // Rings + regions registered (charged to the uid's registered bytes). What counts against
  // --max_pinned_bytes is pinned_bytes_ - odp_bytes_: on-demand memory is not pinned.
  std::uint64_t pinned_bytes_ = 0;
  std::uint64_t odp_bytes_ = 0;
};

}  // namespace pinring::ringd
