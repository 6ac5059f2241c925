// ringd's configuration: the values the flags (flags.cc) produce, validated in one place so the
// daemon and the tests agree on what is acceptable.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pinring/fork_mode.h"
#include "wire/wire_protocol.h"

namespace pinring::ringd {

// Per-client limits. Each error that hits one names the flag that raises it.
struct ClientLimits {
  std::uint32_t max_queues = 16;
  std::uint32_t max_regions = 64;
  std::uint32_t max_ring_entries = 4096;             // sq and cq entries, each
  std::uint64_t max_pinned_bytes = 1ull << 30;        // rings + regions of one client
  std::uint64_t max_region_bytes = 256ull << 20;

  wire::Limits ToWire() const;
};

// Limits across connections (per uid and for the whole daemon). 0 in a field means "derive it
// from the machine" (DeriveTenantLimits); each refusal names the flag that raises it.
struct TenantLimits {
  std::uint32_t max_connections = 0;            // --max_connections (admin peers get 4 more)
  std::uint32_t max_connections_per_uid = 0;    // --max_connections_per_uid
  std::uint32_t max_queues_total = 0;           // --max_queues_total
  std::uint32_t max_queues_per_uid = 0;         // --max_queues_per_uid
  std::uint64_t max_registered_bytes = 0;       // --max_registered_bytes (rings + regions)
  std::uint64_t max_registered_bytes_per_uid = 0;  // --max_registered_bytes_per_uid
};

// Connections beyond --max_connections kept for admin peers (root, ringd's uid, --admin_group),
// so ringctl works when tenants hold every ordinary slot.
inline constexpr std::uint32_t kAdminReserveConnections = 4;

// The rdma transport (service/rdma, docs/rdma-transport.md): clients that register their own
// rings and connect over RC. Each field names its flag.
struct RdmaConfig {
  std::uint16_t port = 18515;             // --rdma_port; 0 disables the rdma listener
  std::string bind_address = "0.0.0.0";   // --rdma_bind (IPv4)
  std::uint32_t poll_us = 50;             // --rdma_poll_us
  std::uint32_t max_connections = 64;     // --rdma_max_connections
  std::uint32_t op_timeout_ms = 10000;    // --rdma_op_timeout_ms
};

enum class BackendKind { kAuto, kCpu, kVerbs };
absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view s);
absl::string_view BackendKindName(BackendKind k);

struct Config {
  std::string socket_path;
  std::uint32_t socket_mode = 0660;
  std::string socket_group = "pinring";  // applied only when the group exists
  BackendKind backend = BackendKind::kAuto;
  std::string device;   // "" = first device
  int gid_index = -1;   // -1 = auto
  int pollers = 1;
  std::uint32_t adaptive_poll_us = 50;
  ClientLimits limits;
  TenantLimits tenants;
  // Peers that get full stats and the admin connection reserve: root, ringd's own uid, and
  // members of this group (if it exists).
  std::string admin_group = "pinring-admin";
  // A connection that has not completed Hello after this long is closed.
  std::uint32_t handshake_timeout_ms = 5000;
  // Work per queue per serving pass (QueueParams::budget_bytes); 0 = the backend's default.
  std::uint64_t serve_budget_bytes = 0;
  ForkMode default_fork_mode = ForkMode::kShared;  // for ringd's registration of queue rings
  // --default_fork_mode was given: default_fork_mode is announced to clients (HelloReply) as the
  // last layer of their region default (docs/fork-modes.md).
  bool default_fork_mode_configured = false;
  RdmaConfig rdma;
};

// InvalidArgument naming the flag for the first unacceptable value.
absl::Status ValidateConfig(const Config& c);

// Fills every 0 field of c.tenants from the machine: physical memory (registered bytes: half of
// it globally, a quarter per uid), RLIMIT_NOFILE (connections: what the fds allow, at most 1024,
// each connection costing 1 + 2 * --max_queues fds) and the connection limit (queues).
// `mem_bytes` and `nofile` are the machine's figures (passed in so tests can choose them).
void DeriveTenantLimits(Config& c, std::uint64_t mem_bytes, std::uint64_t nofile);

// Fds one connection can hold at most: its socket, and per queue its doorbell and completion
// eventfds (memfds are closed once mapped).
std::uint64_t FdsPerConnection(const ClientLimits& l);
// Fds ringd keeps for itself (listener, signalfd, io_uring rings, pollers, logs, the reserve).
inline constexpr std::uint64_t kDaemonFds = 64;

// "0660" -> 0660. InvalidArgument unless it is octal and <= 07777.
absl::StatusOr<std::uint32_t> ParseOctalMode(absl::string_view s);

// Largest adaptive_poll_us a queue may ask for (1 s: longer spinning is busy-poll).
inline constexpr std::uint32_t kMaxAdaptivePollUs = 1'000'000;
// Region fork_mode value meaning "ringd's --default_fork_mode" (ringd extension; not a ForkMode).
inline constexpr std::uint8_t kForkModeDaemonDefault = 0xff;

}  // namespace pinring::ringd
