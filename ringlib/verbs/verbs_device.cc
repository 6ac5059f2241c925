#include "verbs/verbs_device.h"

#include "verbs/work_request.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pinring/status.h"

namespace pinring {
namespace {

std::string MemlockLimitText() {
  rlimit rl{};
  if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) return "unknown";
  if (rl.rlim_cur == RLIM_INFINITY) return "unlimited";
  return absl::StrCat(rl.rlim_cur / 1024, " KiB");
}

bool IsIpv4MappedGid(const ibv_gid& g) {
  // ::ffff:a.b.c.d — the GID rdma_rxe / mlx derive from an interface's IPv4 address.
  static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(g.raw, kPrefix, sizeof kPrefix) == 0;
}

bool IsZeroGid(const ibv_gid& g) {
  static constexpr std::uint8_t kZero[16] = {};
  return std::memcmp(g.raw, kZero, sizeof kZero) == 0;
}

const char* WcStatusName(ibv_wc_status s) { return ibv_wc_status_str(s); }

std::string KernelRelease() {
  utsname u{};
  return uname(&u) == 0 ? std::string(u.release) : std::string("(uname failed)");
}

// The RC operations pinring posts on an on-demand MR, and their names for error messages.
constexpr struct {
  std::uint32_t bit;
  const char* name;
} kNeededRcOdp[] = {{IBV_ODP_SUPPORT_SEND, "SEND"},
                    {IBV_ODP_SUPPORT_RECV, "RECV"},
                    {IBV_ODP_SUPPORT_WRITE, "WRITE"},
                    {IBV_ODP_SUPPORT_READ, "READ"}};

// One RDMA work request: local[local_off, +len) <-> remote[remote_off, +len). `sge` must outlive
// the post. REQUIRES: the range was checked (LoopbackQp::CheckRange).
void FillRdmaWr(ibv_wr_opcode opcode, const MemoryRegion& local, std::uint64_t local_off,
                const MemoryRegion& remote, std::uint64_t remote_off, std::uint64_t len,
                std::uint64_t wr_id, bool signaled, ibv_sge* sge, ibv_send_wr* wr) {
  // len <= UINT32_MAX: CheckRange.
  verbs::FillWorkRequest(opcode, reinterpret_cast<std::uint64_t>(local.addr()) + local_off,
                         local.lkey(), static_cast<std::uint32_t>(len),
                         reinterpret_cast<std::uint64_t>(remote.addr()) + remote_off,
                         remote.rkey(), wr_id, signaled, sge, wr);
}

}  // namespace

// --- MemoryRegion ------------------------------------------------------------------------------
MemoryRegion::~MemoryRegion() {
  if (absl::Status s = Deregister(); !s.ok()) {
    std::fprintf(stderr, "pinring: %s\n", s.ToString().c_str());
  }
}

MemoryRegion& MemoryRegion::operator=(MemoryRegion&& other) noexcept {
  if (this != &other) {
    (void)Deregister();
    mr_ = other.mr_;
    other.mr_ = nullptr;
  }
  return *this;
}

absl::Status MemoryRegion::Deregister() {
  if (mr_ == nullptr) return absl::OkStatus();
  ibv_mr* mr = mr_;
  mr_ = nullptr;
  // ibv_dereg_mr returns an errno value (not -1/errno).
  if (int rc = ibv_dereg_mr(mr); rc != 0) return pinring::ErrnoToStatus(rc, "ibv_dereg_mr");
  return absl::OkStatus();
}

// --- VerbsDevice -------------------------------------------------------------------------------
absl::StatusOr<std::unique_ptr<VerbsDevice>> VerbsDevice::Open(absl::string_view name, int port,
                                                               int gid_index) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr) {
    const int err = errno;
    if (err == ENOSYS || err == 0) {
      return absl::NotFoundError(absl::StrCat("no RDMA device: ibv_get_device_list failed (no "
                                              "ib_uverbs?); ",
                                              kNoDeviceFix));
    }
    return pinring::ErrnoToStatus(err, absl::StrCat("ibv_get_device_list; ", kNoDeviceFix));
  }
  ibv_device* chosen = nullptr;
  std::string names;
  for (int i = 0; i < n; ++i) {
    const char* dn = ibv_get_device_name(list[i]);
    absl::StrAppend(&names, i == 0 ? "" : ", ", dn);
    if (chosen == nullptr && (name.empty() || name == dn)) chosen = list[i];
  }
  if (chosen == nullptr) {
    ibv_free_device_list(list);
    if (n == 0) {
      return absl::NotFoundError(
          absl::StrCat("no RDMA device: ibv_get_device_list() is empty; ", kNoDeviceFix));
    }
    return absl::NotFoundError(absl::StrCat("no RDMA device called '", name,
                                            "'; present: ", names));
  }
  auto dev = std::unique_ptr<VerbsDevice>(new VerbsDevice());
  dev->name_ = ibv_get_device_name(chosen);
  dev->port_ = port;
  dev->context_ = ibv_open_device(chosen);
  const int open_err = errno;
  ibv_free_device_list(list);
  if (dev->context_ == nullptr) {
    return pinring::ErrnoToStatus(open_err, absl::StrCat("ibv_open_device(", dev->name_, ")"));
  }
  PINRING_RETURN_IF_ERROR(dev->Init(gid_index));
  return dev;
}

absl::StatusOr<std::unique_ptr<VerbsDevice>> VerbsDevice::Adopt(ibv_context* context, int port,
                                                                int gid_index) {
  if (context == nullptr) return absl::InvalidArgumentError("VerbsDevice::Adopt: null context");
  auto dev = std::unique_ptr<VerbsDevice>(new VerbsDevice());
  dev->name_ = ibv_get_device_name(context->device);
  dev->port_ = port;
  dev->context_ = context;
  dev->owns_context_ = false;  // librdmacm opened it and closes it
  PINRING_RETURN_IF_ERROR(dev->Init(gid_index));
  return dev;
}

absl::Status VerbsDevice::Init(int gid_index) {
  VerbsDevice* dev = this;
  const int port = port_;
  if (int rc = ibv_query_port(dev->context_, static_cast<std::uint8_t>(port), &dev->port_attr_);
      rc != 0) {
    return pinring::ErrnoToStatus(rc == -1 ? errno : rc, absl::StrCat("ibv_query_port(", dev->name_, ", ", port, ")"));
  }
  if (dev->port_attr_.state != IBV_PORT_ACTIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat(dev->name_, " port ", port, " is ", ibv_port_state_str(dev->port_attr_.state),
                     ", not ACTIVE: is the netdev it is bound to up (ip link set ... up)?"));
  }
  if (gid_index >= 0) {
    if (gid_index >= dev->port_attr_.gid_tbl_len) {
      return absl::InvalidArgumentError(absl::StrCat("gid_index ", gid_index, " out of range: ",
                                                     dev->name_, " has ",
                                                     dev->port_attr_.gid_tbl_len, " GIDs"));
    }
    dev->gid_index_ = gid_index;
  } else if (dev->port_attr_.link_layer == IBV_LINK_LAYER_INFINIBAND) {
    dev->gid_index_ = 0;
  } else {
    // Auto: prefer RoCE v2 + IPv4-mapped (routable over UDP/IP, what rxe builds from an IPv4
    // address), then any RoCE v2, then index 0.
    int v2_mapped = -1, v2_any = -1;
    for (int i = 0; i < dev->port_attr_.gid_tbl_len; ++i) {
      ibv_gid_entry e{};
      if (ibv_query_gid_ex(dev->context_, static_cast<std::uint32_t>(port),
                           static_cast<std::uint32_t>(i), &e, 0) != 0) {
        continue;  // unpopulated entries fail with ENODATA
      }
      if (IsZeroGid(e.gid) || e.gid_type != IBV_GID_TYPE_ROCE_V2) continue;
      if (v2_any < 0) v2_any = i;
      if (v2_mapped < 0 && IsIpv4MappedGid(e.gid)) v2_mapped = i;
    }
    dev->gid_index_ = v2_mapped >= 0 ? v2_mapped : (v2_any >= 0 ? v2_any : 0);
  }
  if (int rc = ibv_query_gid(dev->context_, static_cast<std::uint8_t>(port), dev->gid_index_,
                             &dev->gid_);
      rc != 0) {
    return pinring::ErrnoToStatus(rc == -1 ? errno : rc,
                                  absl::StrCat("ibv_query_gid(", dev->name_, ", index ",
                                               dev->gid_index_, ")"));
  }
  if (dev->port_attr_.link_layer != IBV_LINK_LAYER_INFINIBAND && IsZeroGid(dev->gid_)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dev->name_, " GID index ", dev->gid_index_,
                     " is empty: give the netdev an IP address, or pass --gid_index"));
  }
  // ODP capabilities, for fork mode odp (CheckOnDemand). A failed query is kept as the reason,
  // not an error: only odp registrations need it.
  ibv_device_attr_ex attr{};
  if (int rc = ibv_query_device_ex(dev->context_, nullptr, &attr); rc == 0) {
    dev->odp_.supported = (attr.odp_caps.general_caps & IBV_ODP_SUPPORT) != 0;
    dev->odp_.rc_caps = attr.odp_caps.per_transport_caps.rc_odp_caps;
  } else {
    dev->odp_.query_error = absl::StrCat("ibv_query_device_ex: ", std::strerror(rc));
  }
  dev->pd_ = ibv_alloc_pd(dev->context_);
  if (dev->pd_ == nullptr) return pinring::LastErrnoStatus("ibv_alloc_pd");
  return absl::OkStatus();
}

VerbsDevice::~VerbsDevice() {
  if (pd_ != nullptr) {
    if (int rc = ibv_dealloc_pd(pd_); rc != 0) {
      std::fprintf(stderr, "pinring: ibv_dealloc_pd: %s (an MR or QP outlived its device)\n",
                   std::strerror(rc));
    }
  }
  if (context_ != nullptr && owns_context_) ibv_close_device(context_);
}

namespace {
// Early in every message: ringd's replies carry the first 190 characters.
constexpr const char* kOdpInstead =
    "; fork mode odp refused (never pinned instead): use kernel, dontfork or shared";
}  // namespace

absl::Status VerbsDevice::CheckOnDemand() {
  if (!odp_.query_error.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(name_, " on Linux ", KernelRelease(),
                                                      ": cannot query ODP support", kOdpInstead,
                                                      " (", odp_.query_error, ")"));
  }
  std::string missing;
  for (const auto& op : kNeededRcOdp) {
    if ((odp_.rc_caps & op.bit) == 0) absl::StrAppend(&missing, missing.empty() ? "" : ", ", op.name);
  }
  if (!odp_.supported || !missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        name_, " on Linux ", KernelRelease(), " has ",
        !odp_.supported ? "no on-demand paging" : absl::StrCat("no ODP for RC ", missing),
        kOdpInstead, " (ibv_query_device_ex: ODP ", odp_.supported ? "supported" : "unsupported",
        ", rc_odp_caps 0x", absl::Hex(odp_.rc_caps), "; rxe has ODP from the 7.x kernels, not "
        "in 6.1 or 6.12)"));
  }
  // The capability bits say the driver takes ODP registrations, not that it places the bytes
  // right: prove it once per device, with the operations pinring posts.
  absl::call_once(odp_probe_once_, [this] { odp_probe_ = ProbeOnDemandData(); });
  return odp_probe_;
}

absl::Status VerbsDevice::ProbeOnDemandData() {
  // Two pages each side. The source is pinned and every byte differs from its neighbours' KiB,
  // so bytes landing at the wrong offset show. The ranges start inside a page and cross a page
  // boundary, over more than one packet at any MTU up to 4 KiB.
  constexpr std::size_t kLen = 8192, kOff = 1000, kCount = 5000;
  auto qp = LoopbackQp::Create(*this, 4);
  if (!qp.ok()) return qp.status();
  std::vector<std::uint8_t> src(kLen), back(kLen, 0);
  for (std::size_t i = 0; i < kLen; ++i) src[i] = static_cast<std::uint8_t>(i * 131 + i / 1024);
  void* odp = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (odp == MAP_FAILED) return pinring::LastErrnoStatus("mmap(odp probe)");
  std::memset(odp, 0, kLen);
  constexpr int kPinned = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
  ibv_mr* raw = ibv_reg_mr(pd_, odp, kLen, kPinned | IBV_ACCESS_ON_DEMAND);
  if (raw == nullptr) {
    const int err = errno;
    munmap(odp, kLen);
    return absl::FailedPreconditionError(absl::StrCat(
        name_, " on Linux ", KernelRelease(), ": ibv_reg_mr(IBV_ACCESS_ON_DEMAND) fails (",
        std::strerror(err), ")", kOdpInstead));
  }
  absl::Status result = absl::OkStatus();
  {
    MemoryRegion odp_mr(raw);
    absl::StatusOr<MemoryRegion> src_mr = Register(src.data(), kLen, kPinned);
    absl::StatusOr<MemoryRegion> back_mr = Register(back.data(), kLen, kPinned);
    if (!src_mr.ok()) result = src_mr.status();
    if (result.ok() && !back_mr.ok()) result = back_mr.status();
    // The device writes into on-demand memory (responder side of WRITE) ...
    if (result.ok()) result = (*qp)->Write(*src_mr, kOff, odp_mr, kOff, kCount, absl::Seconds(10));
    const auto* got = static_cast<const std::uint8_t*>(odp);
    std::size_t right = 0;
    for (std::size_t i = kOff; i < kOff + kCount; ++i) right += got[i] == src[i];
    if (result.ok() && right != kCount) {
      result = absl::FailedPreconditionError(absl::StrCat(
          name_, " on Linux ", KernelRelease(), ": on-demand MRs lose data", kOdpInstead,
          " (self-test: an RDMA WRITE of ", kCount, " bytes at offset ", kOff,
          " into an on-demand MR put ", right, " of them where they belong; the driver reports "
          "ODP for RC but misplaces bytes within a page)"));
    }
    // ... and reads out of it (requester side of WRITE, responder side of READ).
    if (result.ok()) result = (*qp)->Read(odp_mr, kOff, *back_mr, kOff, kCount, absl::Seconds(10));
    if (result.ok() && std::memcmp(back.data() + kOff, src.data() + kOff, kCount) != 0) {
      result = absl::FailedPreconditionError(absl::StrCat(
          name_, " on Linux ", KernelRelease(), ": on-demand MRs lose data", kOdpInstead,
          " (self-test: an RDMA READ of ", kCount, " bytes at offset ", kOff,
          " out of an on-demand MR returned other bytes)"));
    }
    if (!result.ok() && !absl::IsFailedPrecondition(result)) {
      result = absl::FailedPreconditionError(absl::StrCat(
          name_, " on Linux ", KernelRelease(), ": the on-demand paging self-test failed",
          kOdpInstead, " (", result.message(), ")"));
    }
  }  // MRs deregistered before the memory goes
  munmap(odp, kLen);
  return result;
}

absl::Status VerbsDevice::Prefetch(const MemoryRegion& mr, bool for_write) const {
  if (!mr.valid()) return absl::InvalidArgumentError("Prefetch: no MR");
  // ibv_sge.length is 32-bit: advise in chunks of at most 1 GiB.
  constexpr std::uint64_t kMaxAdvise = 1ull << 30;
  const auto base = reinterpret_cast<std::uint64_t>(mr.addr());
  for (std::uint64_t off = 0; off < mr.length(); off += kMaxAdvise) {
    ibv_sge sge{};
    sge.addr = base + off;
    sge.length = static_cast<std::uint32_t>(std::min<std::uint64_t>(kMaxAdvise, mr.length() - off));
    sge.lkey = mr.lkey();
    int rc = ibv_advise_mr(pd_, for_write ? IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE
                                          : IBV_ADVISE_MR_ADVICE_PREFETCH,
                           IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
    if (rc < 0) rc = rc == -1 ? errno : -rc;  // providers return errno or -1 with errno set
    if (rc == EOPNOTSUPP || rc == ENOSYS) {
      return absl::UnimplementedError(absl::StrCat(
          name_, " on Linux ", KernelRelease(),
          " has no ibv_advise_mr prefetch: pages fault in on first device access"));
    }
    if (rc != 0) {
      return pinring::ErrnoToStatus(rc, absl::StrCat("ibv_advise_mr(", sge.length, " bytes)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<MemoryRegion> VerbsDevice::Register(void* addr, std::size_t len, int access) {
  const bool on_demand = (access & IBV_ACCESS_ON_DEMAND) != 0;
  if (on_demand) PINRING_RETURN_IF_ERROR(CheckOnDemand());
  ibv_mr* mr = ibv_reg_mr(pd_, addr, len, access);
  if (mr != nullptr) return MemoryRegion(mr);
  const int err = errno;
  if (on_demand) {
    // Not a pin: RLIMIT_MEMLOCK is not the cause. Say what the device refused.
    return pinring::ErrnoToStatus(
        err, absl::StrCat("ibv_reg_mr(", len, " bytes, IBV_ACCESS_ON_DEMAND) on ", name_,
                          " (Linux ", KernelRelease(), ")",
                          err == EOPNOTSUPP || err == EINVAL
                              ? ": the driver refuses on-demand registration; use fork mode "
                                "kernel, dontfork or shared"
                              : ""));
  }
  if (err == ENOMEM || err == EFAULT || err == EPERM || err == EAGAIN) {
    rlimit rl{};
    const bool limited = getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY;
    if (limited || err == ENOMEM) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "ibv_reg_mr(", len, " bytes) failed: ", std::strerror(err),
          "; RLIMIT_MEMLOCK is ", MemlockLimitText(),
          ": raise it (ulimit -l unlimited, or LimitMEMLOCK=infinity in ringd.service)"));
    }
  }
  return pinring::ErrnoToStatus(err, absl::StrCat("ibv_reg_mr(", len, " bytes)"));
}

// --- LoopbackQp --------------------------------------------------------------------------------
absl::StatusOr<std::unique_ptr<LoopbackQp>> LoopbackQp::Create(VerbsDevice& dev,
                                                               std::uint32_t depth) {
  if (depth == 0) return absl::InvalidArgumentError("LoopbackQp depth must be > 0");
  auto lq = std::unique_ptr<LoopbackQp>(new LoopbackQp(dev));
  lq->depth_ = depth;
  lq->cq_ = ibv_create_cq(dev.context(), static_cast<int>(2 * depth), nullptr, nullptr, 0);
  if (lq->cq_ == nullptr) return pinring::LastErrnoStatus("ibv_create_cq");
  for (ibv_qp** qp : {&lq->initiator_, &lq->target_}) {
    ibv_qp_init_attr init{};
    init.send_cq = lq->cq_;
    init.recv_cq = lq->cq_;
    init.qp_type = IBV_QPT_RC;
    init.cap.max_send_wr = depth;
    init.cap.max_recv_wr = 1;
    init.cap.max_send_sge = 1;
    init.cap.max_recv_sge = 1;
    init.sq_sig_all = 0;
    *qp = ibv_create_qp(dev.pd(), &init);
    if (*qp == nullptr) return pinring::LastErrnoStatus("ibv_create_qp(RC)");
  }
  PINRING_RETURN_IF_ERROR(lq->Connect(lq->initiator_, lq->target_->qp_num));
  PINRING_RETURN_IF_ERROR(lq->Connect(lq->target_, lq->initiator_->qp_num));
  return lq;
}

LoopbackQp::~LoopbackQp() {
  // QPs before the CQ they complete into.
  if (initiator_ != nullptr) ibv_destroy_qp(initiator_);
  if (target_ != nullptr) ibv_destroy_qp(target_);
  if (cq_ != nullptr) ibv_destroy_cq(cq_);
}

std::uint32_t LoopbackQp::initiator_qp_num() const { return initiator_->qp_num; }
std::uint32_t LoopbackQp::target_qp_num() const { return target_->qp_num; }

absl::Status LoopbackQp::Connect(ibv_qp* qp, std::uint32_t remote_qpn) {
  constexpr int kAllRemote =
      IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE;
  // RESET -> INIT: port, pkey, and what the peer may do to memory through this QP.
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = static_cast<std::uint8_t>(dev_.port());
  a.qp_access_flags = kAllRemote;
  if (int rc = ibv_modify_qp(qp, &a,
                             IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
      rc != 0) {
    return pinring::ErrnoToStatus(rc, "ibv_modify_qp(INIT)");
  }
  // INIT -> RTR: the peer's address. On RoCE the address is a GRH with our own GID (loopback).
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = dev_.active_mtu();
  a.dest_qp_num = remote_qpn;
  a.rq_psn = 0;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 12;
  a.ah_attr.port_num = static_cast<std::uint8_t>(dev_.port());
  if (dev_.link_layer() == IBV_LINK_LAYER_INFINIBAND) {
    a.ah_attr.dlid = dev_.lid();
  } else {
    a.ah_attr.is_global = 1;
    a.ah_attr.grh.dgid = dev_.gid();
    a.ah_attr.grh.sgid_index = static_cast<std::uint8_t>(dev_.gid_index());
    a.ah_attr.grh.hop_limit = 1;
  }
  if (int rc = ibv_modify_qp(qp, &a,
                             IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                 IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
      rc != 0) {
    return pinring::ErrnoToStatus(rc, absl::StrCat("ibv_modify_qp(RTR, gid_index ",
                                                   dev_.gid_index(), ")"));
  }
  // RTR -> RTS: send-side retry policy.
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = 0;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.max_rd_atomic = 1;
  if (int rc = ibv_modify_qp(qp, &a,
                             IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                                 IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC);
      rc != 0) {
    return pinring::ErrnoToStatus(rc, "ibv_modify_qp(RTS)");
  }
  return absl::OkStatus();
}

absl::Status LoopbackQp::CheckRange(const MemoryRegion& local, std::uint64_t local_off,
                                    const MemoryRegion& remote, std::uint64_t remote_off,
                                    std::uint64_t len) const {
  if (!local.valid() || !remote.valid()) return absl::InvalidArgumentError("invalid MR");
  // Overflow-safe bounds: off <= length && len <= length - off.
  if (local_off > local.length() || len > local.length() - local_off || remote_off > remote.length() ||
      len > remote.length() - remote_off) {
    return absl::OutOfRangeError(absl::StrCat("RDMA range outside an MR (len ", len, ")"));
  }
  if (len > dev_.max_msg_size() || len > UINT32_MAX) {
    return absl::OutOfRangeError(absl::StrCat("RDMA message of ", len, " bytes exceeds the port's ",
                                              dev_.max_msg_size(), "-byte maximum; chunk it"));
  }
  return absl::OkStatus();
}

absl::Status LoopbackQp::Post(ibv_wr_opcode opcode, const MemoryRegion& local,
                              std::uint64_t local_off, const MemoryRegion& remote,
                              std::uint64_t remote_off, std::uint64_t len, std::uint64_t wr_id,
                              bool signaled) {
  if (broken_) return absl::FailedPreconditionError("loopback QP is in ERROR; recreate it");
  PINRING_RETURN_IF_ERROR(CheckRange(local, local_off, remote, remote_off, len));
  ibv_sge sge;
  ibv_send_wr wr;
  FillRdmaWr(opcode, local, local_off, remote, remote_off, len, wr_id, signaled, &sge, &wr);
  ibv_send_wr* bad = nullptr;
  if (int rc = ibv_post_send(initiator_, &wr, &bad); rc != 0) {
    return pinring::ErrnoToStatus(rc, "ibv_post_send");
  }
  return absl::OkStatus();
}

absl::Status LoopbackQp::PostWrite(const MemoryRegion& src, std::uint64_t src_off,
                                   const MemoryRegion& dst, std::uint64_t dst_off,
                                   std::uint64_t len, std::uint64_t wr_id, bool signaled) {
  return Post(IBV_WR_RDMA_WRITE, src, src_off, dst, dst_off, len, wr_id, signaled);
}

absl::Status LoopbackQp::PostRead(const MemoryRegion& remote_src, std::uint64_t src_off,
                                  const MemoryRegion& local_dst, std::uint64_t dst_off,
                                  std::uint64_t len, std::uint64_t wr_id, bool signaled) {
  return Post(IBV_WR_RDMA_READ, local_dst, dst_off, remote_src, src_off, len, wr_id, signaled);
}

absl::StatusOr<int> LoopbackQp::Poll(absl::Span<ibv_wc> out) {
  const int n = ibv_poll_cq(cq_, static_cast<int>(out.size()), out.data());
  if (n < 0) {
    broken_ = true;
    return absl::InternalError("ibv_poll_cq failed");
  }
  for (int i = 0; i < n; ++i) {
    if (out[i].status != IBV_WC_SUCCESS) broken_ = true;  // the QP has moved to ERROR
  }
  return n;
}

absl::Status LoopbackQp::WaitFor(std::uint64_t wr_id, absl::Duration timeout) {
  ibv_wc wc[8];
  absl::Status failed;
  absl::Status st = verbs::SpinUntil(
      absl::Now() + timeout, "no completion within the timeout", [&]() -> absl::StatusOr<bool> {
        PINRING_ASSIGN_OR_RETURN(int n, Poll(absl::MakeSpan(wc)));
        for (int i = 0; i < n; ++i) {
          if (wc[i].wr_id != wr_id) continue;
          if (wc[i].status != IBV_WC_SUCCESS) {
            failed = absl::InternalError(absl::StrCat("work completion failed: ",
                                                      WcStatusName(wc[i].status), " (vendor_err ",
                                                      wc[i].vendor_err, ")"));
          }
          return true;
        }
        return false;
      });
  if (absl::IsDeadlineExceeded(st)) {
    broken_ = true;
    return absl::DeadlineExceededError(
        absl::StrCat("no completion within ", absl::FormatDuration(timeout)));
  }
  if (!st.ok()) return st;
  return failed;
}

absl::Status LoopbackQp::WriteBatch(absl::Span<const WriteRequest> reqs,
                                    absl::Span<absl::Status> status, absl::Duration timeout) {
  if (broken_) return absl::FailedPreconditionError("loopback QP is in ERROR; recreate it");
  if (reqs.size() > depth_ || status.size() != reqs.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("WriteBatch of ", reqs.size(), " requests on a QP of depth ", depth_));
  }
  if (reqs.empty()) return absl::OkStatus();
  // Every request is checked before anything is posted: a bad one must not leave half a batch
  // on the wire.
  for (const WriteRequest& r : reqs) {
    PINRING_RETURN_IF_ERROR(CheckRange(*r.src, r.src_off, *r.dst, r.dst_off, r.len));
  }
  constexpr std::size_t kMaxBatch = 256;
  if (reqs.size() > kMaxBatch) return absl::InvalidArgumentError("WriteBatch: more than 256");
  ibv_sge sge[kMaxBatch];
  ibv_send_wr wr[kMaxBatch];
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    const WriteRequest& r = reqs[i];
    // wr_id = the index into reqs: completions are matched back to their request.
    FillRdmaWr(IBV_WR_RDMA_WRITE, *r.src, r.src_off, *r.dst, r.dst_off, r.len, i,
               /*signaled=*/true, &sge[i], &wr[i]);
    wr[i].next = i + 1 < reqs.size() ? &wr[i + 1] : nullptr;
  }
  ibv_send_wr* bad = nullptr;
  if (int rc = ibv_post_send(initiator_, wr, &bad); rc != 0) {
    // Requests before `bad` were posted and will complete; drain them, fail the rest.
    const std::size_t posted = bad == nullptr ? 0 : static_cast<std::size_t>(bad - wr);
    const absl::Status err = pinring::ErrnoToStatus(rc, "ibv_post_send");
    for (std::size_t i = posted; i < reqs.size(); ++i) status[i] = err;
    if (posted == 0) return absl::OkStatus();
    reqs = reqs.subspan(0, posted);
  }
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    status[i] = absl::DeadlineExceededError("no completion");  // overwritten as they arrive
  }
  std::size_t done = 0;
  ibv_wc wc[32];
  absl::Status st = verbs::SpinUntil(
      absl::Now() + timeout, "no completion", [&]() -> absl::StatusOr<bool> {
        const int n = ibv_poll_cq(cq_, 32, wc);
        if (n < 0) {
          broken_ = true;
          return absl::InternalError("ibv_poll_cq failed");
        }
        for (int i = 0; i < n; ++i) {
          // wr_ids we did not post here (none should be outstanding) are ignored.
          if (wc[i].wr_id >= reqs.size()) continue;
          ++done;
          if (wc[i].status == IBV_WC_SUCCESS) {
            status[wc[i].wr_id] = absl::OkStatus();
          } else {
            broken_ = true;  // the QP has moved to ERROR; later requests complete flushed
            status[wc[i].wr_id] = absl::InternalError(
                absl::StrCat("work completion failed: ", WcStatusName(wc[i].status),
                             " (vendor_err ", wc[i].vendor_err, ")"));
          }
        }
        return done >= reqs.size();
      });
  if (absl::IsDeadlineExceeded(st)) {
    broken_ = true;
    return absl::OkStatus();  // the unfinished ones keep their DeadlineExceeded
  }
  if (!st.ok()) return st;
  return absl::OkStatus();
}

absl::Status LoopbackQp::Write(const MemoryRegion& src, std::uint64_t src_off,
                               const MemoryRegion& dst, std::uint64_t dst_off, std::uint64_t len,
                               absl::Duration timeout) {
  const std::uint64_t id = next_sync_id_++;
  PINRING_RETURN_IF_ERROR(PostWrite(src, src_off, dst, dst_off, len, id, /*signaled=*/true));
  return WaitFor(id, timeout);
}

absl::Status LoopbackQp::Read(const MemoryRegion& remote_src, std::uint64_t src_off,
                              const MemoryRegion& local_dst, std::uint64_t dst_off,
                              std::uint64_t len, absl::Duration timeout) {
  const std::uint64_t id = next_sync_id_++;
  PINRING_RETURN_IF_ERROR(PostRead(remote_src, src_off, local_dst, dst_off, len, id, true));
  return WaitFor(id, timeout);
}

bool IbvForkUnneeded() { return ibv_is_fork_initialized() == IBV_FORK_UNNEEDED; }

}  // namespace pinring
