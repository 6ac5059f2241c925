// Pin backends: three ways to long-term-pin a range and let a "device" read it back, so the
// evaluator can compare what the CPU wrote with what the pinned pages hold.
//   verbs     ibv_reg_mr (access flags per fork mode); device view = RDMA READ over a loopback
//             RC QP into a separate bounce MR.
//   iouring   IORING_REGISTER_BUFFERS (FOLL_WRITE|FOLL_LONGTERM, whatever the mode); device view
//             = IORING_OP_WRITE_FIXED from the registered buffer into a memfd, read back.
//   gup_test  /sys/kernel/debug/gup_test (CONFIG_GUP_TEST); detected and reported absent when
//             missing.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pinring/fork_mode.h"

namespace pinring::forkcheck {

// One live pin of [addr, addr+len). Destruction unpins.
class Pin {
 public:
  virtual ~Pin() = default;
  // Copies what the device sees in the pinned pages [0, len) into out.
  virtual absl::Status DeviceRead(void* out, std::size_t len) = 0;
};

class PinBackend {
 public:
  virtual ~PinBackend() = default;
  virtual std::string name() const = 0;
  // "" when usable; otherwise why not (reported as the skip reason of every cell).
  virtual std::string unavailable_reason() const = 0;
  // "" when the backend can express `mode`; otherwise why not.
  virtual std::string unsupported_mode_reason(ForkMode mode) const = 0;
  // Pins the range the way `mode` registers (the caller has already applied ApplyForkSafety).
  // Errors carry the errno-mapped status; PinErrno() recovers the errno for the report.
  virtual absl::StatusOr<std::unique_ptr<Pin>> PinRange(void* addr, std::size_t len,
                                                        ForkMode mode) = 0;
  // errno of the last failed PinRange (0 if none).
  int last_errno() const { return last_errno_; }

 protected:
  int last_errno_ = 0;
};

inline constexpr const char* kBackendNames[] = {"verbs", "iouring", "gup_test"};
// The backend called `name` (one of kBackendNames), or nullptr. Opening verbs opens the device.
std::unique_ptr<PinBackend> MakeBackend(std::string_view name);

}  // namespace pinring::forkcheck
