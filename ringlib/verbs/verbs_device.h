// The one place that owns RDMA verbs resources: device context + protection domain, memory
// registrations, and a loopback pair of RC queue pairs on one device. ringd's verbs backend, the
// fork evaluator and the rdma transport all go through these classes; nobody else calls
// ibv_open_device / ibv_alloc_pd / ibv_reg_mr / ibv_create_qp directly.
//
// Lifecycle (as in rdma-core's rc_pingpong): VerbsDevice::Open (context, PD, port + GID query)
// -> Register (MRs) -> LoopbackQp::Create (CQ, two QPs, INIT -> RTR -> RTS) -> post -> poll ->
// destructors in reverse order. Every object here must be destroyed before the VerbsDevice it
// came from.
//
// Thread safety: VerbsDevice::Register and MemoryRegion are safe to use from any thread (libibverbs
// serialises what it needs). A LoopbackQp is NOT thread-safe: one thread at a time posts and polls.
#pragma once

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/call_once.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace pinring {

// RAII owner of one ibv_mr. Move-only; the destructor deregisters (unpins) the memory.
class MemoryRegion {
 public:
  MemoryRegion() = default;
  explicit MemoryRegion(ibv_mr* mr) : mr_(mr) {}
  ~MemoryRegion();
  MemoryRegion(MemoryRegion&& other) noexcept : mr_(other.mr_) { other.mr_ = nullptr; }
  MemoryRegion& operator=(MemoryRegion&& other) noexcept;
  MemoryRegion(const MemoryRegion&) = delete;
  MemoryRegion& operator=(const MemoryRegion&) = delete;

  // Deregisters now and reports failure (the destructor can only log it). Idempotent.
  absl::Status Deregister();

  bool valid() const { return mr_ != nullptr; }
  void* addr() const { return mr_ != nullptr ? mr_->addr : nullptr; }
  std::size_t length() const { return mr_ != nullptr ? mr_->length : 0; }
  std::uint32_t lkey() const { return mr_ != nullptr ? mr_->lkey : 0; }
  std::uint32_t rkey() const { return mr_ != nullptr ? mr_->rkey : 0; }
  ibv_mr* mr() const { return mr_; }

 private:
  ibv_mr* mr_ = nullptr;
};

// RAII owner of an opened RDMA device (ibv_context) and one protection domain.
class VerbsDevice {
 public:
  // Opens device `name` ("" = the first one) on `port`. gid_index -1 picks the RoCE v2 GID whose
  // address is IPv4-mapped (index 1 on rxe); failing that, a RoCE v2 GID, then index 0.
  // Errors: NotFound when there is no RDMA device at all or no device called `name` (the message
  // names the fix: --backend=cpu, or run inside deploy/softroce/pinring-rxe); FailedPrecondition
  // when the port is not ACTIVE; the errno-mapped status of a failed verbs call otherwise.
  static absl::StatusOr<std::unique_ptr<VerbsDevice>> Open(absl::string_view name = "",
                                                           int port = 1, int gid_index = -1);
  // Wraps a context someone else opened and keeps open for longer than this object (librdmacm's
  // rdma_cm_id::verbs: the rdma transport's PD must live on the cm_id's context): queries `port`
  // and the GID like Open and allocates a PD on it. The destructor frees the PD, not the context.
  static absl::StatusOr<std::unique_ptr<VerbsDevice>> Adopt(ibv_context* context, int port,
                                                            int gid_index = -1);
  ~VerbsDevice();
  VerbsDevice(const VerbsDevice&) = delete;
  VerbsDevice& operator=(const VerbsDevice&) = delete;

  // ibv_reg_mr(pd, addr, len, access): pins [addr, addr+len). ENOMEM/EFAULT/EPERM while the
  // process is short of RLIMIT_MEMLOCK become ResourceExhausted naming the current limit and the
  // fix (ulimit -l unlimited, or LimitMEMLOCK=infinity in the unit file).
  // With IBV_ACCESS_ON_DEMAND in `access` (fork mode odp) nothing is pinned: the device's ODP
  // capabilities are checked first (CheckOnDemand) and a device without them gets its precise
  // error, never a pinned registration instead.
  absl::StatusOr<MemoryRegion> Register(void* addr, std::size_t len, int access);

  // What ibv_query_device_ex reports about on-demand paging (queried once, at Open/Adopt).
  struct OdpCaps {
    bool supported = false;       // IBV_ODP_SUPPORT in general_caps
    std::uint32_t rc_caps = 0;    // IBV_ODP_SUPPORT_SEND | _RECV | _WRITE | _READ | ...
    std::string query_error;      // why the query failed, or ""
  };
  const OdpCaps& odp_caps() const { return odp_; }
  // OK when an IBV_ACCESS_ON_DEMAND registration can serve pinring's RC traffic: general ODP
  // support plus RC SEND, RECV, WRITE and READ (the operations pinring posts; which side faults
  // depends on who initiates, so all four are required), and a one-time data self-test on a
  // loopback QP (an RDMA WRITE into and a READ out of an on-demand MR, at offsets inside a page
  // and across pages) that puts every byte where it belongs. Otherwise FailedPrecondition naming
  // the device, the kernel release, what is missing or wrong, and the modes to use instead.
  // Thread-safe; the self-test runs at most once per VerbsDevice.
  absl::Status CheckOnDemand();
  // ibv_advise_mr(PREFETCH[_WRITE], FLUSH) over the whole of an on-demand `mr`: the device maps
  // the pages now instead of faulting on first use. Unimplemented when the device or kernel has
  // no advise_mr (the caller says so and goes on: the first access then faults).
  absl::Status Prefetch(const MemoryRegion& mr, bool for_write) const;

  ibv_context* context() const { return context_; }
  ibv_pd* pd() const { return pd_; }
  const std::string& name() const { return name_; }
  int port() const { return port_; }
  int gid_index() const { return gid_index_; }
  ibv_gid gid() const { return gid_; }
  // IBV_LINK_LAYER_ETHERNET (RoCE: GRH addressing) or IBV_LINK_LAYER_INFINIBAND (LID).
  std::uint8_t link_layer() const { return port_attr_.link_layer; }
  std::uint16_t lid() const { return port_attr_.lid; }
  ibv_mtu active_mtu() const { return port_attr_.active_mtu; }
  std::uint32_t max_msg_size() const { return port_attr_.max_msg_sz; }

 private:
  VerbsDevice() = default;
  // Port + GID query and PD allocation, shared by Open and Adopt.
  absl::Status Init(int gid_index);
  // CheckOnDemand's data self-test.
  absl::Status ProbeOnDemandData();

  ibv_context* context_ = nullptr;
  bool owns_context_ = true;
  ibv_pd* pd_ = nullptr;
  std::string name_;
  int port_ = 1;
  int gid_index_ = 0;
  ibv_gid gid_{};
  ibv_port_attr port_attr_{};
  OdpCaps odp_;
  absl::once_flag odp_probe_once_;
  absl::Status odp_probe_;  // written once, under odp_probe_once_
};

// Two RC QPs on one device, connected to each other, sharing one CQ. The "initiator" QP posts;
// the "target" QP only exists so the initiator has a peer: RDMA WRITE/READ to any MR of the same
// PD runs on the device (the NIC moves the bytes between pinned pages, the CPU does not).
class LoopbackQp {
 public:
  // `depth`: max outstanding work requests (send queue and CQ size).
  static absl::StatusOr<std::unique_ptr<LoopbackQp>> Create(VerbsDevice& dev, std::uint32_t depth);
  ~LoopbackQp();
  LoopbackQp(const LoopbackQp&) = delete;
  LoopbackQp& operator=(const LoopbackQp&) = delete;

  // Synchronous: posts one signaled RDMA WRITE of src[src_off, +len) to dst[dst_off, +len) and
  // waits (up to timeout) for its completion. OutOfRange for ranges outside the MRs; Internal
  // naming the ibv_wc_status on a failed completion (the QP is then in ERROR: see broken());
  // DeadlineExceeded on timeout (also marks the QP broken).
  absl::Status Write(const MemoryRegion& src, std::uint64_t src_off, const MemoryRegion& dst,
                     std::uint64_t dst_off, std::uint64_t len,
                     absl::Duration timeout = absl::Seconds(30));
  // Synchronous RDMA READ of remote_src[src_off, +len) into local_dst[dst_off, +len).
  absl::Status Read(const MemoryRegion& remote_src, std::uint64_t src_off,
                    const MemoryRegion& local_dst, std::uint64_t dst_off, std::uint64_t len,
                    absl::Duration timeout = absl::Seconds(30));

  // Asynchronous API for batches. Post* queue one work request (signaled or not) with `wr_id`;
  // the caller keeps at most depth() outstanding and must post a signaled one at least every
  // depth() requests. Poll returns how many completions it stored in `out` (0 = none yet).
  absl::Status PostWrite(const MemoryRegion& src, std::uint64_t src_off, const MemoryRegion& dst,
                         std::uint64_t dst_off, std::uint64_t len, std::uint64_t wr_id,
                         bool signaled);
  absl::Status PostRead(const MemoryRegion& remote_src, std::uint64_t src_off,
                        const MemoryRegion& local_dst, std::uint64_t dst_off, std::uint64_t len,
                        std::uint64_t wr_id, bool signaled);
  absl::StatusOr<int> Poll(absl::Span<ibv_wc> out);

  // One RDMA WRITE of a batch: src[src_off, +len) to dst[dst_off, +len), completing as wr_id.
  struct WriteRequest {
    const MemoryRegion* src = nullptr;
    std::uint64_t src_off = 0;
    const MemoryRegion* dst = nullptr;
    std::uint64_t dst_off = 0;
    std::uint64_t len = 0;
    std::uint64_t wr_id = 0;
  };
  // Posts every request as a signaled WRITE in ONE ibv_post_send (a linked list of work requests:
  // one doorbell, on rxe one system call) and waits for all their completions. On return
  // status[i] holds request i's outcome: OK, or the failed completion (a failure moves the QP to
  // ERROR, and the requests after it complete flushed, see broken()). The call itself fails
  // (leaving `status` unspecified) only for a request outside its MRs or larger than the port
  // allows, before anything is posted. REQUIRES: reqs.size() <= depth(), status.size() ==
  // reqs.size(), nothing else outstanding.
  absl::Status WriteBatch(absl::Span<const WriteRequest> reqs, absl::Span<absl::Status> status,
                          absl::Duration timeout = absl::Seconds(30));
  // Polls until the completion of `wr_id` arrives. Completions of other wr_ids are dropped.
  absl::Status WaitFor(std::uint64_t wr_id, absl::Duration timeout);

  // True after a failed completion or a timeout: the QP is in ERROR and must be recreated.
  bool broken() const { return broken_; }
  std::uint32_t depth() const { return depth_; }
  std::uint32_t initiator_qp_num() const;
  std::uint32_t target_qp_num() const;

 private:
  explicit LoopbackQp(VerbsDevice& dev) : dev_(dev) {}
  absl::Status Post(ibv_wr_opcode opcode, const MemoryRegion& local, std::uint64_t local_off,
                    const MemoryRegion& remote, std::uint64_t remote_off, std::uint64_t len,
                    std::uint64_t wr_id, bool signaled);
  absl::Status Connect(ibv_qp* qp, std::uint32_t remote_qpn);
  // Bounds and size checks shared by Post and WriteBatch: OutOfRange naming the problem.
  absl::Status CheckRange(const MemoryRegion& local, std::uint64_t local_off,
                          const MemoryRegion& remote, std::uint64_t remote_off,
                          std::uint64_t len) const;

  VerbsDevice& dev_;
  ibv_cq* cq_ = nullptr;
  ibv_qp* initiator_ = nullptr;
  ibv_qp* target_ = nullptr;
  std::uint32_t depth_ = 0;
  std::uint64_t next_sync_id_ = 1ull << 63;  // wr_ids of the synchronous calls
  bool broken_ = false;
};

// ibv_is_fork_initialized() == IBV_FORK_UNNEEDED: the kernel copies pinned pages on fork
// (Linux >= 5.13 with a capable rdma-core), so ibv_fork_init()/MADV_DONTFORK are not needed.
bool IbvForkUnneeded();

// "no RDMA device" message shared by everything that needs a device.
inline constexpr absl::string_view kNoDeviceFix =
    "use --backend=cpu, or run inside deploy/softroce/pinring-rxe (a soft-RoCE guest)";

}  // namespace pinring
