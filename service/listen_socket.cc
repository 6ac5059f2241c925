#include "service/listen_socket.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "pinring/status.h"
#include "service/log.h"

namespace pinring::ringd {
namespace {

std::string DirOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

sockaddr_un AddressOf(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);  // length checked by ValidateConfig
  return a;
}

}  // namespace

absl::StatusOr<ListenSocket> OpenListenSocket(const Config& config) {
  ListenSocket out;
  const int n = sd_listen_fds(/*unset_environment=*/1);
  if (n < 0) return pinring::ErrnoToStatus(-n, "sd_listen_fds");
  if (n > 0) {
    const int fd = SD_LISTEN_FDS_START;
    if (n != 1 || sd_is_socket_unix(fd, SOCK_SEQPACKET, /*listening=*/1, nullptr, 0) <= 0) {
      return absl::InvalidArgumentError(
          "systemd passed sockets, but not exactly one listening AF_UNIX SOCK_SEQPACKET socket: "
          "check ListenSequentialPacket= in ringd.socket");
    }
    // systemd passes the socket blocking (and inheritable). The event loop accepts until EAGAIN
    // (EventLoop::OnAccept): on a blocking socket the accept after the last pending client would
    // block the loop forever, so no client is served and SIGTERM is never read (found by
    // deploy.systemd_e2e step 8). Make it what ringd's own socket is: non-blocking, close-on-exec.
    const int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
      return pinring::LastErrnoStatus("fcntl(O_NONBLOCK/FD_CLOEXEC) on systemd's socket");
    }
    out.fd.reset(fd);
    out.activated = true;
    RINGD_LOG(kInfo, "using the socket passed by systemd (socket activation)");
    return out;
  }

  const std::string& path = config.socket_path;
  const std::string dir = DirOf(path);
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket directory ", dir, " does not exist: create it (install -d -m 0755 ", dir,
        "; systemd: RuntimeDirectory=pinring) or pass --socket=PATH"));
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "socket directory ", dir, " is not writable by uid ", geteuid(),
        ": run ringd as a user that may write there, or pass --socket=PATH"));
  }
  out.fd.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!out.fd.valid()) return pinring::LastErrnoStatus("socket(AF_UNIX, SOCK_SEQPACKET)");
  const sockaddr_un addr = AddressOf(path);
  if (bind(out.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EADDRINUSE) return pinring::LastErrnoStatus(absl::StrCat("bind(", path, ")"));
    // Something is at the path. If it accepts, another ringd owns it; if not, it is a stale
    // socket from a ringd that died, and we replace it.
    UniqueFd probe(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (probe.valid() &&
        connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " is in use: another ringd is running (stop it, or pass a different --socket)"));
    }
    struct stat sst {};
    if (lstat(path.c_str(), &sst) == 0 && !S_ISSOCK(sst.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exists and is not a socket: remove it or pass --socket"));
    }
    RINGD_LOG(kInfo, "replacing stale socket ", path);
    unlink(path.c_str());
    if (bind(out.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      return pinring::LastErrnoStatus(absl::StrCat("bind(", path, ")"));
    }
  }
  if (chmod(path.c_str(), config.socket_mode) != 0) {
    const absl::Status s = pinring::LastErrnoStatus(absl::StrCat("chmod(", path, ")"));
    unlink(path.c_str());
    return s;
  }
  if (!config.socket_group.empty()) {
    if (const group* g = getgrnam(config.socket_group.c_str()); g != nullptr) {
      if (chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
        RINGD_LOG(kWarning, "chown(", path, ", group ", config.socket_group,
                  "): ", std::strerror(errno), "; socket keeps its group");
      }
    }
  }
  if (listen(out.fd.get(), 128) != 0) {
    const absl::Status s = pinring::LastErrnoStatus("listen");
    unlink(path.c_str());
    return s;
  }
  return out;
}

}  // namespace pinring::ringd
