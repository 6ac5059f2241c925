// A real ringd process for integration tests: started on a fresh socket in a private temp dir,
// ready once the socket accepts a connection, killed and reaped by the destructor so nothing is
// left running after a test.
//
//   auto ringd = pinring::testing::RingdProcess::Start({"--backend=cpu"});
//   ASSERT_TRUE(ringd.ok()) << ringd.status();
//   Connect to (*ringd)->socket_path() ...
//
// The binary is PINRING_RINGD_PATH (a compile definition carried by the CMake target
// pinring_test_support, which also makes the test depend on ringd being built), or $PINRING_RINGD.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace pinring::testing {

inline std::string RingdBinary() {
  if (const char* env = std::getenv("PINRING_RINGD"); env != nullptr && *env != '\0') return env;
#ifdef PINRING_RINGD_PATH
  return PINRING_RINGD_PATH;
#else
  return "ringd";
#endif
}

class RingdProcess {
 public:
  // Starts ringd with `args`, adding --socket=<tmpdir>/ringd.sock unless `args` has a --socket=.
  // Returns once a connect() to the socket succeeds; an error with ringd's stderr if it exits
  // first or `timeout` passes.
  static absl::StatusOr<std::unique_ptr<RingdProcess>> Start(
      std::vector<std::string> args, absl::Duration timeout = absl::Seconds(30)) {
    auto p = std::unique_ptr<RingdProcess>(new RingdProcess());
    char tmpl[] = "/tmp/pinring-ringd-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
    p->dir_ = tmpl;
    p->stderr_path_ = p->dir_ + "/ringd.stderr";
    bool has_socket = false;
    for (const std::string& a : args) {
      if (absl::StartsWith(a, "--socket=")) {
        has_socket = true;
        p->socket_path_ = a.substr(9);
      }
    }
    if (!has_socket) {
      p->socket_path_ = p->dir_ + "/ringd.sock";
      args.push_back("--socket=" + p->socket_path_);
    }
    const std::string bin = RingdBinary();
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(bin.c_str()));
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, p->stderr_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    const int rc = posix_spawn(&p->pid_, bin.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      p->pid_ = -1;
      return absl::InternalError(absl::StrCat("posix_spawn(", bin, "): ", std::strerror(rc)));
    }
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (p->TryConnect()) return p;
      int status = 0;
      if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
        p->pid_ = -1;
        return absl::FailedPreconditionError(absl::StrCat(
            "ringd exited before accepting (", DescribeWaitStatus(status), "); stderr:\n",
            p->Stderr()));
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("ringd did not accept on ", p->socket_path_, " within ",
                         absl::FormatDuration(timeout), "; stderr:\n", p->Stderr()));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  ~RingdProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (!dir_.empty()) {
      unlink(socket_path_.c_str());
      unlink(stderr_path_.c_str());
      rmdir(dir_.c_str());
    }
  }
  RingdProcess(const RingdProcess&) = delete;
  RingdProcess& operator=(const RingdProcess&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  pid_t pid() const { return pid_; }

  // Sends `sig` and reaps ringd. Returns its exit code, or 128 + signal if a signal killed it.
  // DeadlineExceeded (ringd is then SIGKILLed and reaped) if it does not exit in time.
  absl::StatusOr<int> Stop(int sig = SIGTERM, absl::Duration timeout = absl::Seconds(30)) {
    if (pid_ <= 0) return absl::FailedPreconditionError("ringd is not running");
    kill(pid_, sig);
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (absl::Now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return absl::DeadlineExceededError(absl::StrCat("ringd ignored signal ", sig, " for ",
                                                        absl::FormatDuration(timeout)));
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  // True while the process has not exited (reaps it if it has).
  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_status_ = status;
      return false;
    }
    return true;
  }

  // Everything ringd wrote to stderr so far.
  std::string Stderr() const {
    std::ifstream in(stderr_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::string DescribeWaitStatus(int status) {
    if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
    return absl::StrCat("wait status ", status);
  }

 private:
  RingdProcess() = default;

  bool TryConnect() const {
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path_.c_str(), sizeof(addr.sun_path) - 1);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    return ok;
  }

  pid_t pid_ = -1;
  int exit_status_ = 0;
  std::string dir_;
  std::string socket_path_;
  std::string stderr_path_;
};

}  // namespace pinring::testing
