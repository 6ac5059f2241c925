#include <fcntl.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "verbs/fork_safety.h"
#include "pin_backend.h"
#include "pinring/status.h"
#include "verbs/verbs_device.h"

namespace pinring::forkcheck {
namespace {

// ---------------------------------------------------------------------------------------------
// io_uring fixed buffers.
class IouringPin : public Pin {
 public:
  ~IouringPin() override {
    if (ring_ok_) {
      io_uring_unregister_buffers(&ring_);
      io_uring_queue_exit(&ring_);
    }
    if (sink_ >= 0) close(sink_);
  }
  absl::Status Init(void* addr, std::size_t len, int* err) {
    if (int r = io_uring_queue_init(4, &ring_, 0); r < 0) {
      *err = -r;
      return pinring::ErrnoToStatus(-r, "io_uring_queue_init");
    }
    ring_ok_ = true;
    iovec iov{addr, len};
    if (int r = io_uring_register_buffers(&ring_, &iov, 1); r < 0) {
      *err = -r;
      io_uring_queue_exit(&ring_);
      ring_ok_ = false;
      return pinring::ErrnoToStatus(-r, "IORING_REGISTER_BUFFERS");
    }
    addr_ = addr;
    sink_ = memfd_create("forkcheck-sink", MFD_CLOEXEC);
    if (sink_ < 0) return pinring::LastErrnoStatus("memfd_create(sink)");
    return absl::OkStatus();
  }
  absl::Status DeviceRead(void* out, std::size_t len) override {
    // The kernel copies from the pinned pages it recorded at registration (the bvec), not through
    // the current page tables: this is the "device view".
    std::size_t done = 0;
    while (done < len) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(len - done, 1u << 30));
      io_uring_prep_write_fixed(sqe, sink_, static_cast<char*>(addr_) + done, chunk,
                                static_cast<off_t>(done), 0);
      io_uring_submit(&ring_);
      io_uring_cqe* cqe = nullptr;
      if (int r = io_uring_wait_cqe(&ring_, &cqe); r < 0) {
        return pinring::ErrnoToStatus(-r, "io_uring_wait_cqe");
      }
      const int res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      if (res < 0) return pinring::ErrnoToStatus(-res, "IORING_OP_WRITE_FIXED");
      if (res == 0) return absl::InternalError("IORING_OP_WRITE_FIXED wrote 0 bytes");
      done += static_cast<std::size_t>(res);
    }
    std::size_t got = 0;
    while (got < len) {
      const ssize_t n =
          pread(sink_, static_cast<char*>(out) + got, len - got, static_cast<off_t>(got));
      if (n < 0) return pinring::LastErrnoStatus("pread(sink)");
      if (n == 0) return absl::InternalError("short read from sink");
      got += static_cast<std::size_t>(n);
    }
    return absl::OkStatus();
  }

 private:
  io_uring ring_{};
  bool ring_ok_ = false;
  void* addr_ = nullptr;
  int sink_ = -1;
};

class IouringBackend : public PinBackend {
 public:
  IouringBackend() {
    io_uring ring{};
    if (int r = io_uring_queue_init(2, &ring, 0); r < 0) {
      reason_ = absl::StrCat("io_uring_queue_init: ", std::strerror(-r));
    } else {
      io_uring_queue_exit(&ring);
    }
  }
  std::string name() const override { return "iouring"; }
  std::string unavailable_reason() const override { return reason_; }
  std::string unsupported_mode_reason(ForkMode mode) const override {
    if (mode == ForkMode::kReadOnly) {
      return "backend: io_uring always pins registered buffers for write (FOLL_WRITE), so a "
             "read-only pin cannot be expressed (write-for-read == kernel on this backend)";
    }
    if (mode == ForkMode::kOdp) {
      return "backend: io_uring fixed buffers are always long-term pins (FOLL_LONGTERM); there "
             "is no on-demand registration to measure";
    }
    return "";
  }
  absl::StatusOr<std::unique_ptr<Pin>> PinRange(void* addr, std::size_t len, ForkMode) override {
    auto pin = std::make_unique<IouringPin>();
    last_errno_ = 0;
    if (absl::Status st = pin->Init(addr, len, &last_errno_); !st.ok()) {
      if (last_errno_ == 0) last_errno_ = EIO;
      return st;
    }
    return pin;
  }

 private:
  std::string reason_;
};

// ---------------------------------------------------------------------------------------------
// verbs: ibv_reg_mr + RDMA READ over a loopback RC QP.
class VerbsPin : public Pin {
 public:
  VerbsPin(LoopbackQp& qp, MemoryRegion mr, MemoryRegion bounce, void* bounce_mem, std::size_t len)
      : qp_(qp),
        mr_(std::move(mr)),
        bounce_(std::move(bounce)),
        bounce_mem_(bounce_mem),
        len_(len) {}
  ~VerbsPin() override {
    (void)bounce_.Deregister();
    internal::ReleaseForkSafety(bounce_mem_, len_, ForkMode::kDontFork);
    munmap(bounce_mem_, len_);
  }
  absl::Status DeviceRead(void* out, std::size_t len) override {
    std::memset(bounce_mem_, 0x5a, len);  // so a read that moved nothing cannot look coherent
    PINRING_RETURN_IF_ERROR(qp_.Read(mr_, 0, bounce_, 0, len));
    std::memcpy(out, bounce_mem_, len);
    return absl::OkStatus();
  }

 private:
  LoopbackQp& qp_;
  MemoryRegion mr_;
  MemoryRegion bounce_;
  void* bounce_mem_;
  std::size_t len_;
};

class VerbsBackend : public PinBackend {
 public:
  VerbsBackend() {
    auto dev = VerbsDevice::Open();
    if (!dev.ok()) {
      reason_ = std::string(dev.status().message());
      return;
    }
    dev_ = *std::move(dev);
    auto qp = LoopbackQp::Create(*dev_, 16);
    if (!qp.ok()) {
      reason_ = absl::StrCat("loopback QP: ", std::string(qp.status().message()));
      return;
    }
    qp_ = *std::move(qp);
  }
  std::string name() const override { return "verbs"; }
  std::string unavailable_reason() const override { return reason_; }
  std::string unsupported_mode_reason(ForkMode mode) const override {
    // odp on a device without ODP for RC: the precise reason, never a pinned stand-in.
    if (mode == ForkMode::kOdp && dev_ != nullptr) {
      if (absl::Status s = dev_->CheckOnDemand(); !s.ok()) {
        return absl::StrCat("backend: ", s.message());
      }
    }
    return "";
  }
  absl::StatusOr<std::unique_ptr<Pin>> PinRange(void* addr, std::size_t len,
                                                ForkMode mode) override {
    last_errno_ = 0;
    if (qp_->broken()) {
      auto qp = LoopbackQp::Create(*dev_, 16);
      if (!qp.ok()) return qp.status();
      qp_ = *std::move(qp);
    }
    // The bounce buffer is the tool's own: keep it out of every child so fork() cannot disturb it.
    void* bounce = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bounce == MAP_FAILED) return pinring::LastErrnoStatus("mmap(bounce)");
    std::memset(bounce, 0, len);
    (void)internal::ApplyForkSafety(bounce, len, ForkMode::kDontFork);
    auto bmr = dev_->Register(bounce, len, IBV_ACCESS_LOCAL_WRITE);
    if (!bmr.ok()) {
      internal::ReleaseForkSafety(bounce, len, ForkMode::kDontFork);
      munmap(bounce, len);
      last_errno_ = errno != 0 ? errno : EIO;
      return bmr.status();
    }
    const int access = internal::RegistrationAccessFor(mode, /*device_writes=*/false);
    errno = 0;
    auto mr = dev_->Register(addr, len, access);
    if (!mr.ok()) {
      last_errno_ = errno != 0 ? errno : EIO;
      (void)bmr->Deregister();
      internal::ReleaseForkSafety(bounce, len, ForkMode::kDontFork);
      munmap(bounce, len);
      return mr.status();
    }
    return std::unique_ptr<Pin>(new VerbsPin(*qp_, *std::move(mr), *std::move(bmr), bounce, len));
  }

 private:
  std::string reason_;
  std::unique_ptr<VerbsDevice> dev_;
  std::unique_ptr<LoopbackQp> qp_;
};

// ---------------------------------------------------------------------------------------------
class GupTestBackend : public PinBackend {
 public:
  GupTestBackend() {
    struct stat st {};
    if (stat("/sys/kernel/debug/gup_test", &st) != 0) {
      reason_ =
          "/sys/kernel/debug/gup_test absent (kernel built without CONFIG_GUP_TEST, or "
          "debugfs not mounted)";
    } else {
      reason_ =
          "/sys/kernel/debug/gup_test exists but this build has no gup_test pin backend "
          "(PIN_LONGTERM_TEST_* ioctls not wired up)";
    }
  }
  std::string name() const override { return "gup_test"; }
  std::string unavailable_reason() const override { return reason_; }
  std::string unsupported_mode_reason(ForkMode) const override { return ""; }
  absl::StatusOr<std::unique_ptr<Pin>> PinRange(void*, std::size_t, ForkMode) override {
    return absl::UnimplementedError(reason_);
  }

 private:
  std::string reason_;
};

}  // namespace

std::unique_ptr<PinBackend> MakeBackend(std::string_view name) {
  if (name == "verbs") return std::make_unique<VerbsBackend>();
  if (name == "iouring") return std::make_unique<IouringBackend>();
  if (name == "gup_test") return std::make_unique<GupTestBackend>();
  return nullptr;
}

}  // namespace pinring::forkcheck
