// The verbs backend: every ring and region is registered with ibv_reg_mr (pinned), and data moves
// on the device through a loopback RC QP pair:
//   COPY     = RDMA WRITE from the source MR to the destination MR (chunked)
//   CHECKSUM = RDMA READ of the range into ringd's bounce MR, FNV-1a over what the device returned
//   FILL     = fill the bounce MR with the value, RDMA WRITE it over the range (chunked)
// One QP serves all pollers under a mutex: under soft-RoCE the device, not the lock, is the limit.
// A poller's batch runs through ExecuteBatch: consecutive COPYs of up to one chunk are posted as
// one linked list of WRITEs (one doorbell; on rxe one system call) and reaped together, so a ring
// with many small COPYs keeps up to kQpDepth WRITEs in flight instead of one.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "pinring/status.h"
#include "verbs/fork_safety.h"
#include "verbs/verbs_device.h"
#include "service/backend.h"
#include "service/region_table.h"
#include "service/log.h"

namespace pinring::ringd {
namespace {

constexpr std::uint64_t kChunk = 1u << 20;    // bytes per work request
constexpr std::size_t kBounceSize = 1u << 20;  // CHECKSUM / FILL staging
constexpr std::uint32_t kQpDepth = 64;         // WRITEs in flight per batch

class VerbsMemory final : public BackendMemory {
 public:
  // `total`: the backend's running count of pinned (or, on_demand, of ODP) bytes.
  VerbsMemory(MemoryRegion mr, bool on_demand, std::atomic<std::uint64_t>* total)
      : mr_(std::move(mr)), on_demand_(on_demand), total_(total) {
    total_->fetch_add(mr_.length(), std::memory_order_relaxed);  // statistic / limit pre-check
  }
  ~VerbsMemory() override { total_->fetch_sub(mr_.length(), std::memory_order_relaxed); }
  std::uint64_t pinned_bytes() const override { return on_demand_ ? 0 : mr_.length(); }
  std::uint64_t odp_bytes() const override { return on_demand_ ? mr_.length() : 0; }
  const MemoryRegion& mr() const { return mr_; }

 private:
  MemoryRegion mr_;
  bool on_demand_;
  std::atomic<std::uint64_t>* total_;
};

const MemoryRegion& MrOf(const Region* r) {
  // Every region of a verbs ringd was registered by this backend.
  return static_cast<const VerbsMemory*>(r->backend_memory.get())->mr();
}

class VerbsBackend final : public Backend {
 public:
  explicit VerbsBackend(std::unique_ptr<VerbsDevice> dev) : dev_(std::move(dev)) {}
  ~VerbsBackend() override {
    absl::MutexLock l(&mu_);
    qp_.reset();
    bounce_mr_ = MemoryRegion();
  }

  absl::Status Init() {
    absl::MutexLock l(&mu_);
    bounce_.resize(kBounceSize);
    PINRING_ASSIGN_OR_RETURN(bounce_mr_,
                             dev_->Register(bounce_.data(), bounce_.size(),
                                            IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
                                                IBV_ACCESS_REMOTE_WRITE));
    PINRING_ASSIGN_OR_RETURN(qp_, LoopbackQp::Create(*dev_, kQpDepth));
    return absl::OkStatus();
  }

  absl::string_view name() const override { return "verbs"; }
  std::string device() const override { return dev_->name(); }
  std::uint64_t default_serve_budget() const override { return kChunk; }

  absl::Status CheckMode(ForkMode mode) const override {
    return ForkModeIsOnDemand(mode) ? dev_->CheckOnDemand() : absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<BackendMemory>> Register(void* addr, std::size_t len,
                                                          ForkMode mode) override {
    if (ForkModeIsOnDemand(mode)) return RegisterOnDemand(addr, len);
    const bool device_writable = !ForkModeIsDeviceReadOnly(mode);
    // RLIMIT_MEMLOCK pre-check: without CAP_IPC_LOCK (approximated by euid 0) the kernel refuses
    // pins beyond the limit; say so with numbers instead of a bare ENOMEM.
    rlimit rl{};
    if (geteuid() != 0 && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
      const std::uint64_t pinned = pinned_total_.load(std::memory_order_relaxed);
      if (pinned + len > rl.rlim_cur) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "pinning ", len, " more bytes would exceed ringd's RLIMIT_MEMLOCK (", rl.rlim_cur,
            " bytes, ", pinned, " already pinned): run ringd with `ulimit -l unlimited`, or "
            "LimitMEMLOCK=infinity in ringd.service"));
      }
    }
    // readonly: the device may read (RDMA READ source, WRITE source) but never write: no
    // LOCAL_WRITE, no REMOTE_WRITE, so the pin is a read pin. Everything else: full access
    // (write-for-read deliberately asks for write access it never uses).
    const int access = device_writable ? (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                                          IBV_ACCESS_REMOTE_READ)
                                       : IBV_ACCESS_REMOTE_READ;
    PINRING_ASSIGN_OR_RETURN(MemoryRegion mr, dev_->Register(addr, len, access));
    return std::unique_ptr<BackendMemory>(new VerbsMemory(std::move(mr), false, &pinned_total_));
  }

  // Fork mode odp: IBV_ACCESS_ON_DEMAND, nothing pinned, no RLIMIT_MEMLOCK pre-check. Prefetched
  // with ibv_advise_mr where the device can, so the first descriptor does not pay every fault.
  absl::StatusOr<std::unique_ptr<BackendMemory>> RegisterOnDemand(void* addr, std::size_t len) {
    const int access = internal::RegistrationAccessFor(ForkMode::kOdp, /*device_writes=*/true);
    PINRING_ASSIGN_OR_RETURN(MemoryRegion mr, dev_->Register(addr, len, access));
    if (absl::Status s = dev_->Prefetch(mr, /*for_write=*/true); !s.ok()) {
      // Not an error: the pages fault in on first use instead. Said once per reason.
      RINGD_LOG_LIMITED(kInfo, "odp region of ", len, " bytes not prefetched: ", s.message());
    }
    return std::unique_ptr<BackendMemory>(new VerbsMemory(std::move(mr), true, &odp_total_));
  }

  OpResult Execute(const ValidatedOp& op) override {
    if (op.opcode == Opcode::kNop) return {};
    absl::MutexLock l(&mu_);
    if (!EnsureQpLocked()) return {CompletionStatus::kDeviceError, 0};
    return ExecuteLocked(op);
  }

  void ExecuteBatch(absl::Span<const ValidatedOp> ops, absl::Span<OpResult> out) override {
    absl::MutexLock l(&mu_);
    LoopbackQp::WriteRequest reqs[kQpDepth];
    std::size_t idx[kQpDepth];  // reqs[k] is ops[idx[k]]
    std::size_t pending = 0;
    // Posts the pending WRITEs as one list, waits for all of them, records each one's result.
    auto flush = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (pending == 0) return;
      absl::Status st[kQpDepth];
      absl::Status s = EnsureQpLocked() ? qp_->WriteBatch(absl::MakeConstSpan(reqs, pending),
                                                          absl::MakeSpan(st, pending))
                                        : absl::UnavailableError("no loopback QP");
      std::size_t failed = 0;
      const absl::Status* first_error = nullptr;
      for (std::size_t k = 0; k < pending; ++k) {
        const absl::Status& one = s.ok() ? st[k] : s;
        if (one.ok()) {
          out[idx[k]] = {CompletionStatus::kOk, ops[idx[k]].desc.length};
        } else {
          if (failed++ == 0) first_error = &one;
          out[idx[k]] = {CompletionStatus::kDeviceError, 0};
        }
      }
      // One line per batch: after a failure the rest of the batch completes flushed.
      if (failed > 0) {
        RINGD_LOG(kWarning, "verbs COPY failed (", failed, " of ", pending,
                  " in the batch): ", first_error->ToString());
      }
      pending = 0;
    };
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const ValidatedOp& op = ops[i];
      if (op.status != CompletionStatus::kOk) continue;  // rejected by validation: not ours
      // A fenced op starts only after every earlier one finished: drain the WRITEs in flight.
      // (QueueServer already ends its batch before a fence; this keeps the backend's own
      // contract whoever calls it.)
      if ((op.desc.flags & kDescFlagFence) != 0) flush();
      if (op.opcode == Opcode::kNop) {
        out[i] = {};
        continue;
      }
      if (op.opcode == Opcode::kCopy && op.desc.length <= kChunk) {
        // Queued behind earlier WRITEs of the batch. In-order placement on one RC QP covers
        // write-after-write and write-after-read, but NOT read-after-write: the device reads a
        // WRITE's local source when it sends it, possibly before an earlier WRITE to that range
        // has landed. So a COPY whose source overlaps a queued COPY's destination waits for the
        // queue to drain; other opcodes flush first too. Results are as if executed in order.
        // The overlap is judged on the backing memory: two handles of one memfd alias.
        for (std::size_t k = 0; k < pending; ++k) {
          const ValidatedOp& w = ops[idx[k]];
          if (RangesAlias(*w.dst, w.desc.dst_offset, w.desc.length, *op.src, op.desc.src_offset,
                          op.desc.length)) {
            flush();
            break;
          }
        }
        reqs[pending] = {&MrOf(op.src),      op.desc.src_offset, &MrOf(op.dst),
                         op.desc.dst_offset, op.desc.length,     0};
        idx[pending++] = i;
        if (pending == kQpDepth) flush();
        continue;
      }
      flush();
      out[i] = EnsureQpLocked() ? ExecuteLocked(op) : OpResult{CompletionStatus::kDeviceError, 0};
    }
    flush();
  }

 private:
  // A failed completion leaves the QP in ERROR: replace it so one bad op does not poison the
  // device for every other client. False (logged) if a new one cannot be made.
  bool EnsureQpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (qp_ != nullptr && !qp_->broken()) return true;
    qp_.reset();
    auto qp = LoopbackQp::Create(*dev_, kQpDepth);
    if (!qp.ok()) {
      RINGD_LOG(kError, "recreating the loopback QP: ", qp.status().ToString());
      return false;
    }
    qp_ = std::move(*qp);
    return true;
  }

  // One op, synchronously (chunked). REQUIRES: EnsureQpLocked() returned true.
  OpResult ExecuteLocked(const ValidatedOp& op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const Descriptor& d = op.desc;
    absl::Status s;
    std::uint64_t result = d.length;
    switch (op.opcode) {
      case Opcode::kCopy:
        for (std::uint64_t pos = 0; pos < d.length && s.ok(); pos += kChunk) {
          const std::uint64_t n = std::min(kChunk, d.length - pos);
          s = qp_->Write(MrOf(op.src), d.src_offset + pos, MrOf(op.dst), d.dst_offset + pos, n);
        }
        break;
      case Opcode::kChecksum: {
        std::uint64_t h = op.checksum_seed;
        for (std::uint64_t pos = 0; pos < d.length && s.ok(); pos += kBounceSize) {
          const std::uint64_t n = std::min<std::uint64_t>(kBounceSize, d.length - pos);
          s = qp_->Read(MrOf(op.src), d.src_offset + pos, bounce_mr_, 0, n);
          // What the device delivered into the bounce buffer, not what the CPU sees in the region.
          if (s.ok()) h = Fnv1a64(std::span<const std::byte>(bounce_.data(), n), h);
        }
        result = h;
        break;
      }
      case Opcode::kFill: {
        const std::uint64_t staged = std::min<std::uint64_t>(kBounceSize, d.length);
        FillPattern(std::span<std::byte>(bounce_.data(), staged), d.value,
                    (d.flags & kDescFlagFillPattern64) != 0);
        // kBounceSize is a multiple of 8, so every chunk starts on the pattern's phase.
        for (std::uint64_t pos = 0; pos < d.length && s.ok(); pos += kBounceSize) {
          const std::uint64_t n = std::min<std::uint64_t>(kBounceSize, d.length - pos);
          s = qp_->Write(bounce_mr_, 0, MrOf(op.dst), d.dst_offset + pos, n);
        }
        break;
      }
      case Opcode::kNop:
        break;
    }
    if (!s.ok()) {
      RINGD_LOG(kWarning, "verbs op ", static_cast<int>(d.opcode), " failed: ", s.ToString());
      return {CompletionStatus::kDeviceError, 0};
    }
    return {CompletionStatus::kOk, result};
  }

  std::unique_ptr<VerbsDevice> dev_;
  std::atomic<std::uint64_t> pinned_total_{0};  // relaxed: a statistic and a limit pre-check
  std::atomic<std::uint64_t> odp_total_{0};     // relaxed: a statistic
  absl::Mutex mu_;
  std::vector<std::byte> bounce_ ABSL_GUARDED_BY(mu_);
  MemoryRegion bounce_mr_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<LoopbackQp> qp_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> MakeVerbsBackend(absl::string_view device,
                                                          int gid_index) {
  PINRING_ASSIGN_OR_RETURN(auto dev, VerbsDevice::Open(device, 1, gid_index));
  auto b = std::make_unique<VerbsBackend>(std::move(dev));
  PINRING_RETURN_IF_ERROR(b->Init());
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace pinring::ringd
