// ringd's listening socket: created, bound, permissioned and listening, or inherited from systemd
// socket activation. Errors name the fix.
#pragma once

#include "absl/status/statusor.h"
#include "service/config.h"
#include "service/unique_fd.h"

namespace pinring::ringd {

struct ListenSocket {
  UniqueFd fd;
  bool activated = false;  // from systemd (LISTEN_FDS): ringd neither binds nor unlinks it
};

// sd_listen_fds(): a SOCK_SEQPACKET Unix socket passed by systemd, if any; else binds
// config.socket_path. A stale socket file (nobody accepting) is replaced; a live one is
// FailedPrecondition ("another ringd is running?"). A missing or unwritable directory names the
// fix (create /run/pinring, or pass --socket).
absl::StatusOr<ListenSocket> OpenListenSocket(const Config& config);

}  // namespace pinring::ringd
