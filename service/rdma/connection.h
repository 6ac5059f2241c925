// One connection of ringd's rdma transport: a client (its rings and regions live in its own
// registered memory) or a peer ringd forwarding REMOTE ops (kConnectFlagPeer: no rings).
//
// The connection owns its RC QP and CQ, its staging memory in ringd, the regions it was granted
// and its one root task (task.h), which handles the control messages received so far and then
// executes the descriptors the doorbells announced. The listener's loop polls the CQ (Poll),
// starts the task when there is work (StartWork), and reaps the connection once it is dead and
// its task has ended.
//
// Staging memory (one MR, LOCAL_WRITE only: ringd is the initiator of every RDMA operation, so
// no rkey of it is ever given out):
//   receive slots (kRequestSlotBytes) | send slots (kSlotBytes) | SQ staging (RDMA READ target,
//   and where inline descriptors are copied) | CQ staging | bounce buffer
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "verbs/private_region.h"
#include "verbs/rdma_channel.h"
#include "wire/rdma_wire.h"
#include "service/rdma/context.h"
#include "service/rdma/pending_ops.h"
#include "service/rdma/rdma_executor.h"
#include "service/rdma/task.h"

namespace pinring::ringd {

class RemoteMemory;

class Connection final : public RemoteOps, public QpOwner {
 public:
  // Receives the client may have in flight: its send slots, plus slack.
  static constexpr std::uint32_t kRecvDepth = 32 + rdma::kControlSlack;
  // Ops of other connections (REMOTE ops against this connection's grants) in flight on this QP.
  static constexpr std::uint32_t kForeignOps = 8;
  // Per send slot one SEND or one notification WRITE_WITH_IMM, plus at most one unsignaled
  // completion WRITE before a notification (the run before the CQ wraps).
  static constexpr std::uint32_t kSendDepth = 2 * rdma::kSendSlots + 1 + 1 + kForeignOps;

  Connection(TransportContext& ctx, RemoteMemory& remote, std::uint32_t id, bool peer,
             Device* device, std::unique_ptr<rdma::RdmaChannel> ch,
             const rdma::ConnectRequest& req);
  ~Connection() override;

  // QP, staging memory, posted receives, then the REP carrying `rep`.
  absl::Status SetUp(const rdma::ConnectReply& rep);
  // Rejects the REQ with `rep` (after a failed SetUp).
  void Reject(const rdma::ConnectReply& rep);

  // --- the loop's side ---
  // Polls the CQ: receives go to the inbox, SEND completions free slots, one-sided ops complete
  // their waiters (PendingOps). A failed completion breaks the QP.
  void Poll();
  // Starts the root task when it is not running and there is work. True if it started.
  bool StartWork();
  // After the task ended: its error, if any, fails the connection.
  void Reap();
  // Before the loop sleeps: arm the CQ. A completion that landed before the arm is seen by the
  // poll that follows.
  absl::Status ArmCq() { return qp_destroyed_ ? absl::OkStatus() : ch_->ArmCq(); }
  // Ends the connection because of `why`: tells the client (kError, best effort, when the QP
  // still works and the handshake finished), then disconnects once that SEND completed or
  // 500 ms passed (FinishClose).
  void Fail(absl::Status why);
  // QpOwner: the QP goes now, every wait on it fails.
  void Abort(absl::Status why) override;
  // Called every loop pass: the kError SEND of a failed connection, the handshake timeout, a
  // send slot waited for too long.
  void Tick(absl::Time now);
  void OnEstablished() { established_ = true; }
  void OnDisconnected();  // the rdma_cm event: the peer is gone
  // Dead and its task ended: the listener may destroy it.
  // (No other connection's ForeignOp may still run on it either: they reference it.)
  bool reapable() const {
    return dead_ && task_.done() && foreign_ops_ == 0 && foreign_waiters_.empty();
  }
  bool dead() const { return dead_; }
  bool usable() const { return !dead_ && !failing_ && !qp_broken_; }

  std::uint32_t id() const { return id_; }
  bool peer() const { return peer_; }
  Device* device() const { return device_; }
  rdma::RdmaChannel& channel() { return *ch_; }
  const rdma::ConnectRequest& request() const { return req_; }
  std::size_t region_count() const { return regions_.size(); }
  std::uint64_t descriptors() const { return descriptors_; }
  std::uint64_t inline_descriptors() const { return inline_descriptors_; }
  std::uint32_t pending_descriptors() const { return tail_ - head_; }
  bool waiting() const { return !task_.done(); }
  // The IPv4 address of ringd's side of the connection (host order), 0 if unknown.
  std::uint32_t local_ipv4() const;
  std::string remote_address() const;

  // --- RemoteOps: the executor's view (one RDMA op through the bounce buffer) ---
  rdma_async::Task<absl::Status> Read(std::uint64_t remote_addr, std::uint32_t rkey,
                                      std::uint32_t len) override;
  rdma_async::Task<absl::Status> Write(std::uint64_t remote_addr, std::uint32_t rkey,
                                       std::uint32_t len) override;
  std::byte* bounce() override { return base() + bounce_off_; }
  std::uint32_t bounce_size() override { return kBounceBytes; }
  const GrantedRegion* Lookup(std::uint32_t handle) override;
  rdma_async::Task<CompletionStatus> Remote(Descriptor d, std::uint64_t* result) override;

  // An RDMA READ/WRITE on THIS connection's QP whose local buffer is `local` (another
  // connection's bounce: same PD), for a REMOTE op of that connection against one of this
  // connection's grants. At most kForeignOps at a time; more wait their turn.
  rdma_async::Task<absl::Status> ForeignOp(ibv_wr_opcode op, const MemoryRegion& local,
                                           std::uint64_t local_off, std::uint32_t len,
                                           std::uint64_t remote_addr, std::uint32_t rkey);
  const MemoryRegion& staging_mr() const { return mem_->mr(); }
  std::uint64_t bounce_offset() const { return bounce_off_; }

 private:
  std::byte* base() { return static_cast<std::byte*>(mem_->data()); }
  // One signaled op on this QP, awaited until it completes or its deadline.
  rdma_async::Task<absl::Status> RunOp(ibv_wr_opcode op, const MemoryRegion& local,
                                       std::uint64_t local_off, std::uint32_t len,
                                       std::uint64_t remote_addr, std::uint32_t rkey);
  // A SEND from a free send slot; waits for one (up to op_timeout) when all are busy.
  rdma_async::Task<absl::Status> Send(rdma::ControlMessage m);
  bool TrySend(const rdma::ControlMessage& m);
  // A send slot not in flight, or -1.
  int FreeSendSlot() const;
  // A receive that completed and is not handled yet. Its slot is reposted only when Serve takes
  // it (TakeMessage), so a client cannot queue more than kRecvDepth messages in ringd: beyond
  // that its SENDs wait for receiver-not-ready retries, on its side.
  struct Arrived {
    std::uint32_t slot = 0;
    std::uint32_t len = 0;      // byte_len: untrusted
    bool is_send = true;        // IBV_WC_RECV; false: the client used RDMA WRITE_WITH_IMM
  };
  // A message copied out of its receive slot: its ControlMessage and, for kDoorbellInline, the
  // descriptors behind it. Untrusted; `len` is the received length.
  struct Received {
    rdma::ControlMessage m;
    std::uint32_t len = 0;
    bool is_send = true;
    Descriptor inline_descs[rdma::kMaxInlineDescriptors];
  };
  // Copies the message of `a` out of its slot into `r` and reposts the slot.
  absl::Status TakeMessage(const Arrived& a, Received* r);
  // The root task: inbox, then descriptors, until there is nothing left.
  rdma_async::Task<absl::Status> Serve();
  rdma_async::Task<absl::Status> HandleMessage(const Received& r);
  // kDoorbell / kDoorbellInline: validates the new tail (and copies inline descriptors into the
  // SQ staging when they are the next ones to execute).
  absl::Status HandleDoorbell(const Received& r);
  rdma_async::Task<absl::Status> Execute();
  void Break(absl::Status why);  // a completion failed: the QP is in ERROR
  void FinishClose();

  TransportContext& ctx_;
  RemoteMemory& remote_;
  const std::uint32_t id_;
  const bool peer_;
  Device* const device_;
  std::unique_ptr<rdma::RdmaChannel> ch_;
  const rdma::ConnectRequest req_;  // validated copy; never re-read from the client
  const std::uint32_t sq_mask_, cq_mask_;
  std::unique_ptr<PrivateRegion> mem_;
  std::uint64_t send_off_ = 0, sq_off_ = 0, cq_off_ = 0, bounce_off_ = 0;
  std::vector<bool> send_busy_;
  rdma_async::Event* slot_waiter_ = nullptr;  // the task, waiting for a free send slot
  absl::Time slot_deadline_;
  std::uint32_t foreign_ops_ = 0;
  std::vector<rdma_async::Event*> foreign_waiters_;  // FIFO
  std::uint32_t head_ = 0;     // next descriptor ringd reads (ringd's own copy)
  std::uint32_t tail_ = 0;     // highest validated doorbell tail
  // Descriptors [head_, fetched_) are in the SQ staging already (READ, or copied from an inline
  // doorbell); head_ <= fetched_ <= tail_ in ring order.
  std::uint32_t fetched_ = 0;
  std::uint32_t cq_tail_ = 0;  // completions written
  std::uint32_t idle_doorbells_ = 0;
  std::uint32_t next_handle_ = 1;
  std::map<std::uint32_t, GrantedRegion> regions_;
  std::vector<Arrived> inbox_;  // received, not handled: at most kRecvDepth
  std::uint64_t descriptors_ = 0;
  std::uint64_t inline_descriptors_ = 0;  // of those, how many arrived in an inline doorbell
  rdma_async::Task<absl::Status> task_;
  bool established_ = false;  // the RTU arrived (RDMA_CM_EVENT_ESTABLISHED)
  absl::Time accepted_at_;     // when ringd sent its REP: the handshake timeout runs from here
  bool failing_ = false;       // Fail(): waiting for the kError SEND before the disconnect
  absl::Time close_deadline_;
  bool dead_ = false;       // disconnected: reap once the task ended
  bool qp_broken_ = false;  // a work completion failed: the QP is in ERROR
  bool qp_destroyed_ = false;
  absl::Status error_;
};

}  // namespace pinring::ringd
