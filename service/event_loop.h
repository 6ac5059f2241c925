// ringd's control plane: one io_uring event loop (liburing) on the main thread that accepts
// clients, reads their control messages, serves eventfd-mode queues when their doorbell rings,
// takes signals through a signalfd, and runs a housekeeping timer. Busy-poll and adaptive queues
// run on Poller threads.
//
// Every io_uring request carries a heap-allocated PendingOp as user_data; the op owns any buffer
// the kernel writes into and is freed only when its CQE is reaped, so a request that completes
// after its client is gone writes into live memory and is then ignored (ids, not pointers, name
// the client and queue).
#pragma once

#include <liburing.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>
#include "service/backend.h"
#include "service/client_session.h"
#include "service/completion_waker.h"
#include "service/config.h"
#include "service/counters.h"
#include "service/listen_socket.h"
#include "service/poller.h"
#include "service/tenant_table.h"

namespace pinring::ringd {

class EventLoop final : public QueueScheduler {
 public:
  // REQUIRES: SIGTERM, SIGINT and SIGHUP are blocked in every thread (main does it before any
  // thread starts) so they arrive through the signalfd.
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create(const Config& config,
                                                           std::unique_ptr<Backend> backend,
                                                           ListenSocket listener);
  ~EventLoop() override;

  // Runs until SIGTERM/SIGINT; then notifies every client, releases everything. Returns the
  // process exit code (0 on a clean shutdown).
  int Run();

  void Attach(ClientSession& c, QueueServer* q) override;
  void Detach(ClientSession& c, QueueServer* q) override;
  std::string StatsJson(bool admin, uid_t uid) override;

  // Another part of ringd's stats (the rdma transport): `section(admin)` becomes stats[key] of
  // every stats reply. Called on the loop's thread; it must be thread-safe against its owner.
  using StatsSection = std::function<nlohmann::json(bool admin)>;
  void AddStatsSection(std::string key, StatsSection section) {
    sections_.emplace_back(std::move(key), std::move(section));
  }

 private:
  struct PendingOp;
  EventLoop(const Config& config, std::unique_ptr<Backend> backend, ListenSocket listener);
  absl::Status Init();

  io_uring_sqe* GetSqe();
  PendingOp* NewOp(int kind, std::uint64_t client = 0, std::uint32_t queue = 0);
  void ArmListen();
  void ArmSignal();
  void ArmTimer();
  void ArmClient(ClientSession& c);
  void ArmDoorbell(ClientSession& c, QueueServer& q);
  void ArmWaker();
  void CancelOp(PendingOp*& op);

  void OnCompletion(PendingOp* op, int res);
  void OnAccept();
  void OnSignal(PendingOp* op, int res);
  void OnTimer();
  void OnClientReadable(std::uint64_t client_id);
  void OnDoorbell(std::uint64_t client_id, std::uint32_t queue_id);
  // Eventfd-mode queues with work wait in ready_ and get one budgeted pass each per loop round,
  // between rounds of control-plane completions.
  void MarkReady(std::uint64_t client_id, std::uint32_t queue_id);
  void ServeReady();
  // Accepts one connection past EMFILE with the reserve fd, refuses it with a reason, and
  // pauses accepting until the next timer tick (no busy loop while fds are short).
  void RefuseForLackOfFds(int err);
  bool IsAdmin(int fd, const PeerCred& cred) const;
  void Disconnect(std::uint64_t client_id, absl::string_view why);
  void Shutdown();
  void Notify(const std::string& state);

  Config config_;
  std::unique_ptr<Backend> backend_;
  ListenSocket listener_;
  // Declared before clients_: queues hold a pointer to it until they are destroyed.
  std::unique_ptr<CompletionWaker> waker_;
  TenantTable tenants_;
  // Kept open so that at EMFILE one connection can still be accepted and told why it is refused.
  UniqueFd reserve_fd_;
  bool listen_paused_ = false;  // accepting stopped at EMFILE; the timer resumes it
  bool admin_gid_valid_ = false;
  gid_t admin_gid_ = 0;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> ready_;
  absl::flat_hash_set<std::pair<std::uint64_t, std::uint32_t>> ready_set_;
  std::uint32_t refused_pending_ = 0;  // refused connections waiting for their Hello
  UniqueFd signal_fd_;
  io_uring ring_{};
  bool ring_ready_ = false;
  bool stopping_ = false;
  std::vector<std::unique_ptr<Poller>> pollers_;
  absl::flat_hash_map<std::uint64_t, std::unique_ptr<ClientSession>> clients_;
  // The pending socket poll of each client, and the pending doorbell read of each eventfd queue.
  absl::flat_hash_map<std::uint64_t, PendingOp*> client_ops_;
  absl::flat_hash_map<QueueServer*, PendingOp*> doorbell_ops_;
  absl::flat_hash_map<QueueServer*, Poller*> queue_poller_;
  // Eventfd queues whose CQ filled before the SQ drained: retried by the timer.
  absl::flat_hash_set<std::pair<std::uint64_t, std::uint32_t>> backlog_;
  absl::flat_hash_set<PendingOp*> all_ops_;
  std::uint64_t next_client_id_ = 1;
  std::uint64_t accepted_ = 0;
  CountersSnapshot retired_;  // counters of clients that have left
  std::int64_t started_ns_ = 0;
  std::vector<std::pair<std::string, StatsSection>> sections_;
};

}  // namespace pinring::ringd
