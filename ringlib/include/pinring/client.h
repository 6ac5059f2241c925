// The ringlib client: a connection to ringd over its Unix socket, and the factory of queues and
// regions. Start here:
//
//   absl::StatusOr<pinring::Client> client = pinring::Client::Connect({});
//   absl::StatusOr<pinring::Region> region = client->CreateRegion({.size = 1 << 20});
//   absl::StatusOr<pinring::Queue> queue = client->CreateQueue({});
//   absl::StatusOr<pinring::Completion> c =
//       queue->SubmitAndWait(pinring::MakeFill(region->handle(), 0, 4096, 0xab), absl::Seconds(5));
//
// Errors are absl::Status; nothing throws. Unavailable means ringd stopped: Connect again.
// FailedPrecondition from a handle in a forked child means "create a new Client in the child".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pinring/descriptors.h"
#include "pinring/queue.h"
#include "pinring/region.h"
#include "pinring/export.h"
#include "pinring/wire_types.h"

namespace pinring {

namespace internal {
class Connection;
}  // namespace internal

struct ClientOptions {
  // ringd's socket. Empty: $PINRING_SOCKET, else the build's default (/run/pinring/ringd.sock).
  std::string socket_path;
  // How this client names itself to ringd (shown by ringctl). Empty: the program name.
  std::string name;
  // Upper bound on each control request (create, destroy, stats). Fast-path calls never block on
  // the control socket.
  absl::Duration request_timeout = absl::Seconds(10);
  // Fork mode of this client's regions that do not set RegionOptions::fork_mode. Unset:
  // $PINRING_FORK_MODE, else ringd's --default_fork_mode, else dontfork (docs/fork-modes.md).
  std::optional<ForkMode> default_fork_mode = std::nullopt;
};

// What ringd told us in its HelloReply.
struct ServerInfo {
  std::string socket_path;  // the path actually connected to
  std::uint16_t version = 0;
  std::uint32_t client_id = 0;
  wire::Limits limits{};
  std::string backend;  // "cpu" or "verbs"
  std::string device;   // RDMA device name, or ""
  // ringd's --default_fork_mode, if it has one configured.
  std::optional<ForkMode> default_fork_mode;
};

// The socket path Connect would use for `options`: options.socket_path, else $PINRING_SOCKET, else
// the compiled-in default.
PINRING_EXPORT std::string ResolveSocketPath(const ClientOptions& options);

// RAII handle on one connection to ringd. Move-only. Queues and Regions created from it keep the
// connection alive on their own, so they may outlive the Client object. Thread-safe: control
// requests from several threads are serialized.
class PINRING_EXPORT Client {
 public:
  // Connects and performs the versioned handshake. Errors name the fix:
  //   Unavailable       nothing listens at the path ("ringd is not running at PATH: start it ...")
  //   PermissionDenied  EACCES on the socket ("... add your user to the `pinring` group")
  //   FailedPrecondition ringd speaks another protocol version
  //   InvalidArgument   $PINRING_FORK_MODE is not a mode name (when it is consulted: see
  //                     default_fork_mode()), or options.default_fork_mode is not a ForkMode
  static absl::StatusOr<Client> Connect(const ClientOptions& options = {});

  Client() = default;  // an empty handle; only assignment and destruction are valid
  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  // Closes this handle's reference to the connection; ringd forgets the client (and frees its
  // queues and regions) once every Queue and Region from it is gone too.
  ~Client();

  const ServerInfo& info() const { return info_; }

  // The fork mode of regions created without RegionOptions::fork_mode, resolved once by Connect,
  // first that is set: options.default_fork_mode; $PINRING_FORK_MODE; ringd's
  // --default_fork_mode (info().default_fork_mode); ForkMode::kDontFork.
  ForkMode default_fork_mode() const { return default_fork_mode_; }
  // Which of those layers default_fork_mode() came from: "ClientOptions", "PINRING_FORK_MODE",
  // "ringd --default_fork_mode" or "built-in".
  std::string_view default_fork_mode_source() const { return default_fork_mode_source_; }

  // Creates a memfd region of options.size bytes, seals it against shrinking, maps it MAP_SHARED,
  // applies options.fork_mode, and has ringd map and register it. On success the returned Region
  // owns the mapping and the registration.
  absl::StatusOr<Region> CreateRegion(const RegionOptions& options);

  // Creates a queue: a sealed memfd holding the rings, plus a doorbell and a completion eventfd,
  // all passed to ringd, which maps (and with the verbs backend registers) the rings.
  absl::StatusOr<Queue> CreateQueue(const QueueOptions& options = {});

  // ringd's counters as JSON text (StatsRequest / StatsReply), for ringctl.
  absl::StatusOr<std::string> Stats();

  // OK while connected; FailedPrecondition in a forked child; Unavailable once ringd stopped.
  // Polls the control socket without blocking.
  absl::Status Health() const;

  bool valid() const { return conn_ != nullptr; }

 private:
  absl::Status Usable(const char* what) const;

  std::shared_ptr<internal::Connection> conn_;
  ServerInfo info_;
  std::uint32_t generation_ = 0;
  ForkMode default_fork_mode_ = ForkMode::kDontFork;
  std::string_view default_fork_mode_source_ = "built-in";
};

}  // namespace pinring
