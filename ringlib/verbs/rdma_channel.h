// One RC queue pair connected through librdmacm: the rdma transport's counterpart of LoopbackQp
// (verbs_device.h). It owns the cm_id (client side), the CQ and the QP; memory registration and the
// PD stay with VerbsDevice, whose PD must live on the cm_id's context (VerbsDevice::Adopt).
//
// Lifecycle, client: Resolve (event channel, cm_id, address + route: binds the id to a device) ->
// VerbsDevice::Adopt(verbs()) -> CreateQp -> register memory -> Connect(private data) -> post/poll.
// Server: FromConnectRequest (adopts the cm_id of a CONNECT_REQUEST event; the listener owns the
// event channel) -> CreateQp -> Accept or Reject.
// Destruction: DestroyQp (QP, then CQ) must run before the VerbsDevice's PD is freed; the
// destructor does it too, then destroys the cm_id (and the event channel it owns, if any).
//
// Not thread-safe: one thread posts and polls.
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "verbs/verbs_device.h"

struct rdma_cm_id;
struct rdma_event_channel;

namespace pinring::rdma {

class RdmaChannel {
 public:
  struct QpOptions {
    std::uint32_t send_depth = 64;
    std::uint32_t recv_depth = 64;
    // Shared completion channel for the CQ (ringd: one per device). nullptr: the channel creates
    // its own (a client that sleeps on its completions).
    ibv_comp_channel* comp_channel = nullptr;
    void* cq_context = nullptr;
  };

  // Client: resolves `host`:`port` (numeric or name) to a device and route. Unavailable when the
  // address cannot be resolved or routed (no RDMA device on the route), DeadlineExceeded on timeout.
  static absl::StatusOr<std::unique_ptr<RdmaChannel>> Resolve(const std::string& host,
                                                              std::uint16_t port,
                                                              absl::Duration timeout);
  // Server: takes ownership of `id` (from an RDMA_CM_EVENT_CONNECT_REQUEST, already acked).
  static std::unique_ptr<RdmaChannel> FromConnectRequest(rdma_cm_id* id);
  ~RdmaChannel();
  RdmaChannel(const RdmaChannel&) = delete;
  RdmaChannel& operator=(const RdmaChannel&) = delete;

  // The device context the id is bound to (after Resolve / for a request) and its port.
  ibv_context* verbs() const;
  int port_num() const;

  // Creates the CQ (send_depth + recv_depth entries) and the RC QP on dev's PD. REQUIRES:
  // dev.context() == verbs().
  absl::Status CreateQp(VerbsDevice& dev, const QpOptions& opts);
  // Destroys QP then CQ (acking `unacked_cq_events` first). Idempotent.
  void DestroyQp(unsigned unacked_cq_events = 0);

  // Client: rdma_connect with `private_data`, waits for ESTABLISHED. On a reject, the status
  // carries the server's reply (FromReply) and `reply` receives its private data when non-null.
  absl::Status Connect(absl::Span<const std::byte> private_data, absl::Duration timeout,
                       std::string* reply);
  // Client: sends the REQ (rdma_connect) and returns; Connect is this plus the wait. Until the
  // caller reads its rdma_cm events no RTU is sent (tests use this to leave a half-open
  // connection in the server).
  absl::Status StartConnect(absl::Span<const std::byte> private_data);
  // Server.
  absl::Status Accept(absl::Span<const std::byte> private_data);
  absl::Status Reject(absl::Span<const std::byte> private_data);
  // Sends a DREQ (both sides). Errors ignored: the peer may already be gone.
  void Disconnect();
  // Client: true once a DISCONNECTED (or error) event arrived on the channel's own event channel.
  // Non-blocking.
  bool PollDisconnected();

  absl::Status PostRecv(const MemoryRegion& mr, std::uint64_t off, std::uint32_t len,
                        std::uint64_t wr_id);
  absl::Status PostSend(const MemoryRegion& mr, std::uint64_t off, std::uint32_t len,
                        std::uint64_t wr_id, bool signaled);
  // One-sided ops against the peer's memory: [remote_addr, +len) under rkey.
  absl::Status PostWrite(const MemoryRegion& local, std::uint64_t off, std::uint32_t len,
                         std::uint64_t remote_addr, std::uint32_t rkey, std::uint64_t wr_id,
                         bool signaled);
  // An RDMA WRITE whose immediate `imm` (host order; sent in network order) completes one of the
  // peer's posted receives (IBV_WC_RECV_RDMA_WITH_IMM) after the written data is in place.
  absl::Status PostWriteImm(const MemoryRegion& local, std::uint64_t off, std::uint32_t len,
                            std::uint64_t remote_addr, std::uint32_t rkey, std::uint32_t imm,
                            std::uint64_t wr_id, bool signaled);
  absl::Status PostRead(const MemoryRegion& local, std::uint64_t off, std::uint32_t len,
                        std::uint64_t remote_addr, std::uint32_t rkey, std::uint64_t wr_id,
                        bool signaled);
  absl::StatusOr<int> Poll(absl::Span<ibv_wc> out);
  // Requests a notification on the completion channel for the next completion.
  absl::Status ArmCq();
  // Own completion channel only: waits up to `timeout` for a CQ event, acks it, re-arms.
  // Returns false on timeout.
  absl::StatusOr<bool> WaitCqEvent(absl::Duration timeout);

  // The fd of the channel's own completion channel (non-blocking), -1 with a shared one.
  int comp_fd() const;
  ibv_qp* qp() const { return qp_; }
  ibv_cq* cq() const { return cq_; }
  rdma_cm_id* id() const { return id_; }

 private:
  RdmaChannel() = default;
  absl::StatusOr<int> WaitEvent(int expected, absl::Duration timeout, std::string* private_data);

  rdma_event_channel* events_ = nullptr;  // owned (client) or nullptr (server)
  rdma_cm_id* id_ = nullptr;
  ibv_comp_channel* own_comp_ = nullptr;
  ibv_cq* cq_ = nullptr;
  ibv_qp* qp_ = nullptr;
  bool disconnected_ = false;
};

}  // namespace pinring::rdma
