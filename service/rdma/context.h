// What every part of ringd's rdma transport shares: the options, the log, the counters, the
// coroutines ready to run and the table of RDMA operations in flight. One per listener, used by
// the listener's thread only (the counters excepted: stats() reads them from any thread).
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "verbs/verbs_device.h"
#include "service/rdma/pending_ops.h"
#include "service/rdma/rdma_listener.h"
#include "service/rdma/task.h"

namespace pinring::ringd {

// One RDMA device ringd serves on: its PD (VerbsDevice) and the completion channel every CQ of
// the device's connections shares.
struct Device {
  std::unique_ptr<VerbsDevice> dev;
  ibv_comp_channel* comp = nullptr;
};

struct TransportContext {
  RdmaListenerOptions opts;
  std::uint16_t port = 0;  // the listener's port: a node id names this ringd with it
  rdma_async::ReadyQueue ready;
  PendingOps ops{ready};

  void Log(const std::string& line) const { opts.log(line); }

  template <typename F>
  void Count(F f) {
    absl::MutexLock l(&stats_mu);
    f(stats);
  }
  absl::Mutex stats_mu;
  RdmaListenerStats stats ABSL_GUARDED_BY(stats_mu);
};

}  // namespace pinring::ringd
