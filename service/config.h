// ringd's configuration: the values the flags (flags.cc) produce, validated in one place so the
// daemon and the tests agree on what is acceptable.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pinring/fork_mode.h"
#include "pinring/wire_protocol.h"

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
  ForkMode default_fork_mode = ForkMode::kShared;  // for ringd's registration of queue rings
  // --default_fork_mode was given: default_fork_mode is announced to clients (HelloReply) as the
  // last layer of their region default (docs/fork-modes.md).
  bool default_fork_mode_configured = false;
};

// InvalidArgument naming the flag for the first unacceptable value.
absl::Status ValidateConfig(const Config& c);

// "0660" -> 0660. InvalidArgument unless it is octal and <= 07777.
absl::StatusOr<std::uint32_t> ParseOctalMode(absl::string_view s);

// Largest adaptive_poll_us a queue may ask for (1 s: longer spinning is busy-poll).
inline constexpr std::uint32_t kMaxAdaptivePollUs = 1'000'000;
// Region fork_mode value meaning "ringd's --default_fork_mode" (ringd extension; not a ForkMode).
inline constexpr std::uint8_t kForkModeDaemonDefault = 0xff;

}  // namespace pinring::ringd
