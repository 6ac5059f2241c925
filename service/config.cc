#include "service/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "pinring/ring_format.h"

namespace pinring::ringd {

wire::Limits ClientLimits::ToWire() const {
  wire::Limits l{};
  l.max_queues = max_queues;
  l.max_regions = max_regions;
  l.max_sq_entries = max_ring_entries;
  l.max_cq_entries = max_ring_entries;
  l.max_pinned_bytes = max_pinned_bytes;
  l.max_region_bytes = max_region_bytes;
  return l;
}

std::uint64_t FdsPerConnection(const ClientLimits& l) { return 1 + 2 * std::uint64_t{l.max_queues}; }

void DeriveTenantLimits(Config& c, std::uint64_t mem_bytes, std::uint64_t nofile) {
  TenantLimits& t = c.tenants;
  if (t.max_connections == 0) {
    const std::uint64_t usable = nofile > kDaemonFds ? nofile - kDaemonFds : 1;
    // The admin reserve comes on top of --max_connections: leave room for it too.
    const std::uint64_t per = FdsPerConnection(c.limits);
    const std::uint64_t by_fds =
        usable / per > kAdminReserveConnections ? usable / per - kAdminReserveConnections : 1;
    t.max_connections = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(by_fds, 1, 1024));
  }
  if (t.max_connections_per_uid == 0) t.max_connections_per_uid = std::max(1u, t.max_connections / 2);
  if (t.max_queues_total == 0) {
    t.max_queues_total = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(std::uint64_t{t.max_connections} * 4, 1u << 20));
  }
  if (t.max_queues_per_uid == 0) t.max_queues_per_uid = std::max(1u, t.max_queues_total / 2);
  if (t.max_registered_bytes == 0) t.max_registered_bytes = std::max<std::uint64_t>(mem_bytes / 2, 1);
  if (t.max_registered_bytes_per_uid == 0) {
    t.max_registered_bytes_per_uid = std::max<std::uint64_t>(mem_bytes / 4, 1);
  }
}

absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view s) {
  if (s == "auto") return BackendKind::kAuto;
  if (s == "cpu") return BackendKind::kCpu;
  if (s == "verbs") return BackendKind::kVerbs;
  return absl::InvalidArgumentError(
      absl::StrCat("--backend=", s, ": expected auto, cpu or verbs"));
}

absl::string_view BackendKindName(BackendKind k) {
  switch (k) {
    case BackendKind::kAuto: return "auto";
    case BackendKind::kCpu: return "cpu";
    case BackendKind::kVerbs: return "verbs";
  }
  return "?";
}

absl::StatusOr<std::uint32_t> ParseOctalMode(absl::string_view s) {
  if (s.empty() || s.size() > 5) {
    return absl::InvalidArgumentError(absl::StrCat("mode '", s, "' is not an octal mode"));
  }
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '7') {
      return absl::InvalidArgumentError(absl::StrCat("mode '", s, "' is not an octal mode"));
    }
    v = v * 8 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 07777) return absl::InvalidArgumentError(absl::StrCat("mode '", s, "' too large"));
  return v;
}

absl::Status ValidateConfig(const Config& c) {
  if (c.socket_path.empty()) return absl::InvalidArgumentError("--socket must not be empty");
  if (c.socket_path.size() >= 108) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--socket=", c.socket_path, " is longer than a Unix socket path may be (107 bytes)"));
  }
  if (c.pollers < 1 || c.pollers > 64) {
    return absl::InvalidArgumentError(absl::StrCat("--pollers=", c.pollers, ": must be 1..64"));
  }
  if (c.adaptive_poll_us > kMaxAdaptivePollUs) {
    return absl::InvalidArgumentError(absl::StrCat("--adaptive_poll_us=", c.adaptive_poll_us,
                                                   ": must be <= ", kMaxAdaptivePollUs));
  }
  if (c.gid_index < -1) return absl::InvalidArgumentError("--gid_index must be >= -1");
  const ClientLimits& l = c.limits;
  if (l.max_queues == 0) return absl::InvalidArgumentError("--max_queues must be >= 1");
  if (l.max_regions == 0) return absl::InvalidArgumentError("--max_regions must be >= 1");
  if (!IsValidRingSize(l.max_ring_entries)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_ring_entries=", l.max_ring_entries, ": must be a power of two in [",
                     kMinRingEntries, ", ", kMaxRingEntries, "]"));
  }
  if (l.max_region_bytes == 0) return absl::InvalidArgumentError("--max_region_bytes must be > 0");
  if (l.max_pinned_bytes < ComputeQueueLayout(kMinRingEntries, kMinRingEntries).total_size) {
    return absl::InvalidArgumentError(
        "--max_pinned_bytes is too small to hold even the smallest queue");
  }
  if (c.serve_budget_bytes != 0 && c.serve_budget_bytes < 1024) {
    return absl::InvalidArgumentError(absl::StrCat("--serve_budget_bytes=", c.serve_budget_bytes,
                                                   ": must be 0 (the backend's default) or >= 1024"));
  }
  in_addr bind{};
  // Untrusted text (a flag or the flagfile): must be an IPv4 address.
  if (inet_pton(AF_INET, c.rdma.bind_address.c_str(), &bind) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--rdma_bind='", c.rdma.bind_address,
        "' is not an IPv4 address (an RDMA-capable interface's, or 0.0.0.0 for all)"));
  }
  if (c.rdma.poll_us > kMaxAdaptivePollUs) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rdma_poll_us must be <= ", kMaxAdaptivePollUs));
  }
  if (c.rdma.max_connections == 0) {
    return absl::InvalidArgumentError(
        "--rdma_max_connections must be > 0 (use --rdma_port=0 to disable the rdma listener)");
  }
  if (c.rdma.op_timeout_ms == 0) {
    return absl::InvalidArgumentError("--rdma_op_timeout_ms must be > 0");
  }
  if (c.handshake_timeout_ms == 0) {
    return absl::InvalidArgumentError("--handshake_timeout_ms must be > 0");
  }
  return absl::OkStatus();
}

}  // namespace pinring::ringd
