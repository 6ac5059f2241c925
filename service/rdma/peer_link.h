// ringd's own connections to other ringds (kConnectFlagPeer), for REMOTE ops whose grant lives
// on another node. A link is made on demand by the first op naming that node, on a helper thread
// (rdma_cm's resolve and connect block; the transport's loop never does), and dropped on any
// failure (the next op reconnects).
//
// One PeerOp is in flight per link; other ops for the same node wait their turn. A reply is
// awaited like an RDMA op (PendingOps, op_timeout): a peer ringd that stops answering fails the
// op that waits and drops its link, and nothing else waits on it.
//
// Memory: the link has a PD of its own. Its slots are local only. What the peer ringd reaches is
// only the chunk of the op in flight:
//   - kPeerWrite: `out` holds the chunk and is registered REMOTE_READ (the peer reads it);
//   - kPeerRead: `in` is registered REMOTE_WRITE for that one op and deregistered when the op
//     ends, so no rkey that lets the peer write into ringd outlives the op that needed it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "verbs/private_region.h"
#include "verbs/rdma_channel.h"
#include "wire/rdma_wire.h"
#include "pinring/ring_format.h"
#include "verbs/verbs_device.h"
#include "service/rdma/context.h"
#include "service/rdma/pending_ops.h"
#include "service/rdma/task.h"

namespace pinring::ringd {

class PeerLink final : public QpOwner {
 public:
  static constexpr std::uint32_t kRecv = 4;

  PeerLink(TransportContext& ctx, std::uint64_t node) : ctx_(ctx), node_(node) {}
  ~PeerLink() override;

  // Helper thread: resolve, PD, QP, memory, receives, connect (bounded by op_timeout).
  absl::Status Connect(const std::string& host, std::uint16_t port);

  // One chunk: kPeerWrite sends `data` (len bytes) into the grant, kPeerRead fills `data`.
  // Completes with the peer's status, or an error when the link failed (it is then broken).
  rdma_async::Task<absl::StatusOr<CompletionStatus>> Request(std::uint32_t direction,
                                                             std::uint32_t handle,
                                                             std::uint64_t key,
                                                             std::uint64_t offset,
                                                             std::byte* data, std::uint32_t len);

  // The loop: receives (replies) and disconnect events.
  void Poll();
  int comp_fd() const;
  void Arm();
  void Abort(absl::Status why) override;
  bool broken() const { return broken_; }
  bool idle() const { return !busy_; }
  std::uint64_t node() const { return node_; }

 private:
  std::byte* slots() { return static_cast<std::byte*>(slots_->data()); }

  TransportContext& ctx_;
  const std::uint64_t node_;
  std::unique_ptr<rdma::RdmaChannel> ch_;
  std::unique_ptr<VerbsDevice> dev_;     // the link's own PD
  std::unique_ptr<PrivateRegion> slots_;  // kRecv receive slots | one send slot (local only)
  std::unique_ptr<PrivateRegion> out_;    // kPeerWrite chunk (REMOTE_READ)
  MappedMemory in_mem_;                   // kPeerRead chunk; registered per op
  MemoryRegion in_mr_;
  std::uint32_t seq_ = 1;
  bool busy_ = false;                     // a Request is in flight
  std::vector<rdma_async::Event*> turn_;  // Requests waiting for the link (FIFO)
  // The Request in flight: its reply's seq, where the reply goes, and its PendingOps id.
  std::uint32_t want_seq_ = 0;
  std::uint64_t reply_id_ = 0;
  rdma::ControlMessage reply_{};
  bool broken_ = false;
  absl::Status error_;
};

// The links, by node id, and the helper threads that make them.
class PeerPool {
 public:
  // `wake_fd`: an eventfd the loop polls; a helper thread writes it when its link is ready.
  PeerPool(TransportContext& ctx, int wake_fd) : ctx_(ctx), wake_fd_(wake_fd) {}
  ~PeerPool();  // joins the helper threads (each bounded by op_timeout)

  // The link to `node`, connecting on demand. Waits (this coroutine only) for the connect.
  rdma_async::Task<absl::StatusOr<PeerLink*>> Get(std::uint64_t node);
  // The link failed under an op: drop it (the next op reconnects).
  void Drop(PeerLink* link);

  // The loop: adopts finished connects, polls every link, drops broken idle links.
  void Poll();
  void AppendPollFds(std::vector<int>* fds) const;
  void Arm();
  std::size_t size() const { return links_.size(); }
  // The transport stops: waits for the helper threads (each bounded by op_timeout), then fails
  // every wait on a link. Clear() then destroys the links (before the devices' PDs).
  void Shutdown();
  void Clear();

 private:
  struct Connecting {
    std::thread thread;
    absl::Mutex mu;
    bool finished ABSL_GUARDED_BY(mu) = false;
    absl::Status status ABSL_GUARDED_BY(mu);
    std::unique_ptr<PeerLink> link;  // the helper's until `finished`, then the loop's
    std::vector<rdma_async::Event*> waiters;
  };

  TransportContext& ctx_;
  const int wake_fd_;
  std::map<std::uint64_t, std::unique_ptr<PeerLink>> links_;
  std::map<std::uint64_t, std::unique_ptr<Connecting>> connecting_;
  std::vector<std::unique_ptr<PeerLink>> retired_;  // broken, a Request still running on them
};

}  // namespace pinring::ringd
