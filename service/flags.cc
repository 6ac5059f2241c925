#include "service/flags.h"

#include <cstdint>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "pinring/fork_mode.h"

#ifndef PINRING_RUNTIME_DIR
#define PINRING_RUNTIME_DIR "/run/pinring"
#endif

ABSL_FLAG(std::string, socket, PINRING_RUNTIME_DIR "/ringd.sock",
          "Unix SOCK_SEQPACKET socket ringd listens on (ignored under systemd socket activation)");
ABSL_FLAG(std::string, socket_mode, "0660", "Octal permission bits of the socket file");
ABSL_FLAG(std::string, socket_group, "pinring",
          "Group that owns the socket file (only applied if the group exists); members may connect");
ABSL_FLAG(std::string, backend, "auto",
          "Data-plane backend: auto (verbs when an RDMA device exists, else cpu), cpu (memcpy), "
          "verbs (the NIC moves the bytes between pinned pages)");
ABSL_FLAG(std::string, device, "", "RDMA device for --backend=verbs/auto (\"\" = the first one)");
ABSL_FLAG(int, gid_index, -1,
          "GID index for the loopback QP (-1 = the IPv4-mapped RoCE v2 GID, index 1 on rxe)");
ABSL_FLAG(int, pollers, 1, "Busy-poll threads serving busy-poll and adaptive queues (1..64)");
ABSL_FLAG(std::uint32_t, adaptive_poll_us, 50,
          "Default time an adaptive queue is polled after its last work before ringd sleeps on "
          "its doorbell (a queue may ask for its own)");
ABSL_FLAG(std::uint32_t, max_queues, 16, "Per-client limit on queues");
ABSL_FLAG(std::uint32_t, max_regions, 64, "Per-client limit on registered regions");
ABSL_FLAG(std::uint32_t, max_ring_entries, 4096,
          "Per-queue limit on submission and completion ring entries (power of two)");
ABSL_FLAG(std::uint64_t, max_pinned_bytes, std::uint64_t{1} << 30,
          "Per-client limit on registered (with --backend=verbs: pinned) bytes, rings and regions "
          "together");
ABSL_FLAG(std::uint64_t, max_region_bytes, std::uint64_t{256} << 20,
          "Per-region size limit in bytes");
ABSL_FLAG(std::uint32_t, max_connections, 0,
          "Limit on connected clients, all uids together (admin peers get 4 more, so ringctl "
          "still works at the limit). 0 = derive from RLIMIT_NOFILE: what the fds allow at "
          "1 + 2 * --max_queues fds per connection, at most 1024");
ABSL_FLAG(std::uint32_t, max_connections_per_uid, 0,
          "Limit on connections of one uid. 0 = half of --max_connections");
ABSL_FLAG(std::uint32_t, max_queues_total, 0,
          "Limit on queues, all clients together. 0 = 4 * --max_connections");
ABSL_FLAG(std::uint32_t, max_queues_per_uid, 0,
          "Limit on queues of one uid. 0 = half of --max_queues_total");
ABSL_FLAG(std::uint64_t, max_registered_bytes, 0,
          "Limit on registered (with --backend=verbs: pinned) bytes, rings and regions of all "
          "clients together. 0 = half of the machine's physical memory");
ABSL_FLAG(std::uint64_t, max_registered_bytes_per_uid, 0,
          "Limit on registered bytes of one uid, all its connections together. 0 = a quarter "
          "of the machine's physical memory");
ABSL_FLAG(std::string, admin_group, "pinring-admin",
          "Group whose members (like root and ringd's own uid) get full stats and the admin "
          "connection reserve; others see only their own uid's clients (ringd(8), STATS POLICY)");
ABSL_FLAG(std::uint32_t, handshake_timeout_ms, 5000,
          "Connections that have not completed Hello after this many milliseconds are closed");
ABSL_FLAG(std::uint64_t, serve_budget_bytes, 0,
          "Work one serving pass does for one queue, in bytes moved (a CHECKSUM byte counts 32): "
          "larger descriptors run in slices of this size, so tenants sharing a poller or the "
          "event loop interleave at this granularity. 0 = the backend's default (cpu 4096, "
          "verbs 1048576: one device chunk)");
ABSL_FLAG(std::string, default_fork_mode, "",
          "Fork mode of regions whose client chose none (no region option, ClientOptions default "
          "or PINRING_FORK_MODE; announced in the handshake), of regions registered with fork_mode "
          "0xff, and of ringd's own registration of queue rings: kernel, dontfork, write-for-read, "
          "shared or odp (on-demand paging, nothing pinned; checked against the device at "
          "start). Empty: not configured (clients fall back to dontfork, queue rings to shared)");

ABSL_FLAG(std::uint16_t, rdma_port, 18515,
          "rdma_cm port of the rdma transport listener (clients that register their own rings "
          "and connect over RC; docs/rdma-transport.md). 0 disables it. When it cannot start "
          "(no RDMA device or rdma_cm), ringd logs a warning and serves the shm transport only");
ABSL_FLAG(std::uint32_t, rdma_poll_us, 50,
          "After a doorbell of an rdma transport client, the rdma listener keeps polling its "
          "completion queues this many microseconds before sleeping on the completion channel "
          "(lower latency for back-to-back submissions; 0 = always sleep)");
ABSL_FLAG(std::string, rdma_bind, "0.0.0.0",
          "IPv4 address the rdma listener binds (an RDMA-capable interface, or 0.0.0.0 for all)");
ABSL_FLAG(std::uint32_t, rdma_max_connections, 64,
          "Connections the rdma listener accepts at most (clients and peer ringds); more are "
          "rejected with a reason");
ABSL_FLAG(std::uint32_t, rdma_op_timeout_ms, 10000,
          "Bound on one RDMA operation of ringd against an rdma client, and on a peer ringd's "
          "reply: beyond it that connection (or peer link) fails. Only the connection that "
          "waits is delayed");

namespace pinring::ringd {

absl::StatusOr<Config> ConfigFromFlags() {
  Config c;
  c.socket_path = absl::GetFlag(FLAGS_socket);
  auto mode = ParseOctalMode(absl::GetFlag(FLAGS_socket_mode));
  if (!mode.ok()) return absl::InvalidArgumentError(absl::StrCat("--socket_mode: ", mode.status().message()));
  c.socket_mode = *mode;
  c.socket_group = absl::GetFlag(FLAGS_socket_group);
  auto backend = ParseBackendKind(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) return backend.status();
  c.backend = *backend;
  c.device = absl::GetFlag(FLAGS_device);
  c.gid_index = absl::GetFlag(FLAGS_gid_index);
  c.pollers = absl::GetFlag(FLAGS_pollers);
  c.adaptive_poll_us = absl::GetFlag(FLAGS_adaptive_poll_us);
  c.limits.max_queues = absl::GetFlag(FLAGS_max_queues);
  c.limits.max_regions = absl::GetFlag(FLAGS_max_regions);
  c.limits.max_ring_entries = absl::GetFlag(FLAGS_max_ring_entries);
  c.limits.max_pinned_bytes = absl::GetFlag(FLAGS_max_pinned_bytes);
  c.limits.max_region_bytes = absl::GetFlag(FLAGS_max_region_bytes);
  c.tenants.max_connections = absl::GetFlag(FLAGS_max_connections);
  c.tenants.max_connections_per_uid = absl::GetFlag(FLAGS_max_connections_per_uid);
  c.tenants.max_queues_total = absl::GetFlag(FLAGS_max_queues_total);
  c.tenants.max_queues_per_uid = absl::GetFlag(FLAGS_max_queues_per_uid);
  c.tenants.max_registered_bytes = absl::GetFlag(FLAGS_max_registered_bytes);
  c.tenants.max_registered_bytes_per_uid = absl::GetFlag(FLAGS_max_registered_bytes_per_uid);
  c.admin_group = absl::GetFlag(FLAGS_admin_group);
  c.handshake_timeout_ms = absl::GetFlag(FLAGS_handshake_timeout_ms);
  c.serve_budget_bytes = absl::GetFlag(FLAGS_serve_budget_bytes);
  c.rdma.port = absl::GetFlag(FLAGS_rdma_port);
  c.rdma.bind_address = absl::GetFlag(FLAGS_rdma_bind);
  c.rdma.poll_us = absl::GetFlag(FLAGS_rdma_poll_us);
  c.rdma.max_connections = absl::GetFlag(FLAGS_rdma_max_connections);
  c.rdma.op_timeout_ms = absl::GetFlag(FLAGS_rdma_op_timeout_ms);
  const std::string fm = absl::GetFlag(FLAGS_default_fork_mode);
  if (!fm.empty()) {  // empty: not configured; Config's built-in default stays
    auto fork_mode = ParseForkMode(fm);
    if (!fork_mode.has_value() || *fork_mode == ForkMode::kReadOnly) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--default_fork_mode=", fm, ": expected kernel, dontfork, write-for-read, shared or odp "
          "(readonly cannot hold rings ringd writes)"));
    }
    c.default_fork_mode = *fork_mode;
    c.default_fork_mode_configured = true;
  }
  if (absl::Status s = ValidateConfig(c); !s.ok()) return s;
  return c;
}

const char kRingdUsage[] =
    "ringd: the pinring daemon. Clients connect over a Unix socket, hand over memfd rings and "
    "regions, and ringd executes their descriptors (cpu or RDMA verbs backend).\n"
    "Usage: ringd [--flag=value ...] [--flagfile=FILE]";

void InstallUsageConfig() {
  absl::SetProgramUsageMessage(kRingdUsage);
  absl::FlagsUsageConfig u;
  u.contains_helpshort_flags = [](absl::string_view file) {
    return absl::StrContains(file, "service/");
  };
  u.contains_help_flags = u.contains_helpshort_flags;
  absl::SetFlagsUsageConfig(u);
}

}  // namespace pinring::ringd
