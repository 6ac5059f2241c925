// ringd's side of the `rdma` transport: an rdma_cm listener and the executor of descriptors that
// live in the clients' own pinned memory. One thread owns everything: the rdma_cm event channel,
// one completion channel per device, every connection's CQ and QP. Each connection's work is a
// coroutine (task.h) that waits only for its own RDMA operations, so a stalled client or peer
// ringd delays nobody else. See wire/rdma_wire.h for the protocol and docs/rdma-transport.md
// for the design. The parts, one file each: connection (a client or peer connection), serve
// (its control messages and descriptors), rdma_executor (one descriptor), remote_memory
// (REMOTE ops), grant_table, peer_link (links to other ringds), pending_ops (RDMA ops in
// flight and their deadlines) and this listener (rdma_cm accept and the loop).
//
// Per connection: ringd keeps its own head, ring sizes and the regions it granted. A doorbell's
// tail is untrusted (bounded by head + sq_entries); descriptors are RDMA READ into ringd's memory
// and validated there; every data access goes through the NIC against the client's rkeys, so a
// client can only expose its own memory. Any protocol violation or transport failure ends that
// connection only (kError message when the QP still works, then a disconnect).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pinring::ringd {

struct RdmaListenerOptions {
  std::string bind_address = "0.0.0.0";  // IPv4 address of an RDMA-capable interface, or any
  std::uint16_t port = 18515;             // 0 = an ephemeral port (tests); see port()
  std::uint32_t max_connections = 64;
  std::uint32_t max_sq_entries = 4096;
  std::uint32_t max_regions_per_connection = 64;
  std::uint64_t max_region_bytes = 1ull << 30;
  // A doorbell that brings no new descriptor is idle. More than this many idle doorbells in a
  // row end the connection ("doorbell flood").
  std::uint32_t max_idle_doorbells = 1024;
  // Bound on one RDMA operation of ringd against a client; beyond it the connection fails.
  absl::Duration op_timeout = absl::Seconds(10);
  // A connection ringd accepted must be established (the client's RTU) within this; otherwise it
  // is dropped. A client that sends a REQ and never reads its rdma_cm events never sends the RTU,
  // and without this bound each such REQ would hold a QP and ringd's staging MRs until the CM
  // gave up on its REP (over a minute).
  absl::Duration handshake_timeout = absl::Seconds(5);
  // After a doorbell or control message, keep polling the CQs this long before arming them and
  // sleeping: a client's next descriptor then costs no thread wake-up (as adaptive_poll_us does
  // for shm queues). Zero: always sleep on the completion channel.
  absl::Duration poll_window = absl::Microseconds(50);
  // One line per event worth a log (connect, reject, connection errors). Default: stderr.
  std::function<void(const std::string&)> log;
};

// One connection as ringctl shows it.
struct RdmaConnectionInfo {
  std::uint32_t id = 0;
  bool peer = false;          // another ringd (kConnectFlagPeer), not a client
  std::string remote;         // the client's address:port
  std::uint32_t sq_entries = 0, cq_entries = 0;
  std::uint32_t regions = 0;  // regions granted to it
  std::uint64_t descriptors = 0;
  std::uint64_t inline_descriptors = 0;  // of those, delivered in an inline doorbell (no READ)
  std::uint32_t pending = 0;  // descriptors announced by a doorbell, not yet completed
  bool busy = false;          // its task is running (waiting on an RDMA op or the client)
};

struct RdmaListenerStats {
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  std::uint64_t failed = 0;     // connections ended by an error (protocol or transport)
  std::uint64_t closed = 0;     // connections ended by the client
  std::uint64_t descriptors = 0;
  std::uint64_t inline_descriptors = 0;  // descriptors that came in an inline doorbell
  std::uint32_t connected = 0;
  std::uint32_t grants = 0;      // exported regions
  std::uint32_t peer_links = 0;  // ringd's own links to other ringds
  std::uint32_t ops_in_flight = 0;
  // Refreshed by the listener's thread at most every 100 ms and on every connect and close.
  std::vector<RdmaConnectionInfo> connections;
};

class RdmaListener {
 public:
  // Binds and listens, then starts the thread. Unavailable when rdma_cm is missing (no
  // /dev/infiniband/rdma_cm) or the address has no RDMA device; the errno status of rdma_bind_addr
  // otherwise (AlreadyExists-like EADDRINUSE -> Unavailable).
  static absl::StatusOr<std::unique_ptr<RdmaListener>> Start(const RdmaListenerOptions& opts);
  // Stop(): disconnects every client and joins the thread. Idempotent; the destructor calls it.
  ~RdmaListener();
  void Stop();

  std::uint16_t port() const { return port_; }
  RdmaListenerStats stats() const;

  class Impl;

 private:
  RdmaListener() = default;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

}  // namespace pinring::ringd
