// ringd: parse flags, pick the backend, open the socket, run the event loop.
#include <signal.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>

#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "verbs/verbs_device.h"
#include "service/backend.h"
#include "service/completion_waker.h"
#include "service/config.h"
#include "service/event_loop.h"
#include "service/flags.h"
#include "service/listen_socket.h"
#include "service/log.h"
#include "service/rdma/rdma_listener.h"
#include "service/rdma/rdma_stats.h"
#include "tools/common/cli_help.h"

namespace {

int Fail(const absl::Status& s) {
  RINGD_LOG(kError, "cannot start: ", s.ToString());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pinring::ringd;
  pinring::cli::HandleHelp(argc, argv, kRingdUsage, {"service/"});  // stdout, exit 0
  InstallUsageConfig();
  absl::ParseCommandLine(argc, argv);  // handles --helpfull and --flagfile
  // Debian builds Abseil without NDEBUG, so every Mutex acquisition would also run the deadlock
  // detector (a global graph lookup; it showed in callgrind profiles of the poller's per-batch
  // region lock). ringd's lock order is fixed and covered by the sanitizer build's tests.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto config = ConfigFromFlags();
  if (!config.ok()) return Fail(config.status());
  // Every connection costs fds (socket, eventfds): use all the hard limit allows, then size the
  // limits left at 0 from it and from the machine's memory.
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
    getrlimit(RLIMIT_NOFILE, &nofile);
  }
  struct sysinfo si {};
  sysinfo(&si);
  DeriveTenantLimits(*config, std::uint64_t{si.totalram} * si.mem_unit, nofile.rlim_cur);
  const std::uint64_t fds_needed =
      kDaemonFds + FdsPerConnection(config->limits) *
                       (config->tenants.max_connections + kAdminReserveConnections);
  if (fds_needed > nofile.rlim_cur) {
    RINGD_LOG(kWarning, "--max_connections=", config->tenants.max_connections, " with --max_queues=",
              config->limits.max_queues, " may need ", fds_needed, " fds, over RLIMIT_NOFILE ",
              nofile.rlim_cur, ": raise LimitNOFILE in ringd.service (connections past it are "
              "refused with that message)");
  }
  RINGD_LOG(kInfo, "limits: ", config->tenants.max_connections, " connections (",
            config->tenants.max_connections_per_uid, " per uid), ",
            config->tenants.max_queues_total, " queues (", config->tenants.max_queues_per_uid,
            " per uid), ", config->tenants.max_registered_bytes, " registered bytes (",
            config->tenants.max_registered_bytes_per_uid, " per uid); completion wakes via ",
            CompletionWaker::Method());

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
  // A default mode this device cannot register (odp without ODP): say so now, not per client.
  if (absl::Status s = backend->CheckMode(config->default_fork_mode); !s.ok()) {
    return Fail(absl::Status(s.code(), absl::StrCat("--default_fork_mode=",
                                                    std::string(ForkModeName(config->default_fork_mode)),
                                                    ": ", s.message())));
  }

  auto listener = OpenListenSocket(*config);
  if (!listener.ok()) return Fail(listener.status());
  auto loop = EventLoop::Create(*config, std::move(backend), std::move(*listener));
  if (!loop.ok()) return Fail(loop.status());
  // The rdma listener runs its own thread (started after the signal mask, so it inherits it).
  std::unique_ptr<RdmaListener> rdma;
  if (config->rdma.port != 0) {
    RdmaListenerOptions ro;
    ro.port = config->rdma.port;
    ro.bind_address = config->rdma.bind_address;
    ro.max_connections = config->rdma.max_connections;
    ro.op_timeout = absl::Milliseconds(config->rdma.op_timeout_ms);
    ro.max_sq_entries = config->limits.max_ring_entries;
    ro.max_regions_per_connection = config->limits.max_regions;
    ro.max_region_bytes = config->limits.max_region_bytes;
    ro.poll_window = absl::Microseconds(config->rdma.poll_us);
    ro.handshake_timeout = absl::Milliseconds(config->handshake_timeout_ms);
    // Connect, reject and connection-error lines: a remote peer triggers them, so rate-limited.
    ro.log = [](const std::string& line) { RINGD_LOG_LIMITED(kInfo, "rdma: ", line); };
    auto started = RdmaListener::Start(ro);
    if (started.ok()) {
      rdma = std::move(*started);
      RINGD_LOG(kInfo, "rdma transport listening on ", ro.bind_address, ":", rdma->port());
      RdmaListener* r = rdma.get();  // outlives the loop's Run: stopped after it
      (*loop)->AddStatsSection("rdma", [r](bool admin) {
        return RdmaStatsJson(r->stats(), r->port(), admin);
      });
    } else {
      RINGD_LOG(kWarning, "rdma transport disabled: ", started.status().ToString());
    }
  }
  const int rc = (*loop)->Run();
  if (rdma != nullptr) rdma->Stop();
  loop->reset();
  return rc;
}
