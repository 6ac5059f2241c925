// ringd: parse flags, pick the backend, open the socket, run the event loop.
#include <signal.h>

#include <cstdio>
#include <cstdlib>

#include "absl/flags/parse.h"
#include "pinring/verbs_device.h"
#include "service/backend.h"
#include "service/event_loop.h"
#include "service/flags.h"
#include "service/listen_socket.h"
#include "service/log.h"

namespace {

int Fail(const absl::Status& s) {
  RINGD_LOG(kError, "cannot start: ", s.ToString());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pinring::ringd;
  InstallUsageConfig();
  absl::ParseCommandLine(argc, argv);  // handles --help, --helpfull, --flagfile
  auto config = ConfigFromFlags();
  if (!config.ok()) return Fail(config.status());

  // Block the signals we take through the signalfd before any thread exists, so every thread
  // inherits the mask and none of them is interrupted by them. SIGPIPE: ignored (sends use
  // MSG_NOSIGNAL anyway).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<Backend> backend;
  if (config->backend == BackendKind::kCpu) {
    backend = MakeCpuBackend();
  } else {
    auto verbs = MakeVerbsBackend(config->device, config->gid_index);
    if (verbs.ok()) {
      backend = std::move(*verbs);
    } else if (config->backend == BackendKind::kVerbs) {
      return Fail(verbs.status());
    } else {
      RINGD_LOG(kInfo, "--backend=auto: no usable RDMA device (", verbs.status().message(),
                "); using the cpu backend");
      backend = MakeCpuBackend();
    }
  }

  auto listener = OpenListenSocket(*config);
  if (!listener.ok()) return Fail(listener.status());
  auto loop = EventLoop::Create(*config, std::move(backend), std::move(*listener));
  if (!loop.ok()) return Fail(loop.status());
  const int rc = (*loop)->Run();
  loop->reset();
  return rc;
}
