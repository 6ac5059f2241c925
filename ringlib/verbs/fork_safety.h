// The fork-safety hook every registration path calls (shm transport in ringd's client code, the
// private-region API, the rdma transport). Internal: not installed.
//
// What each mode does to the memory itself (access flags are the registrar's job, see
// RegistrationAccessFor()):
//   kDontFork     MADV_DONTFORK on the page-widened range, refcounted across overlapping calls.
//   kKernel, kReadOnly, kWriteForRead, kShared, kOdp: nothing to do to the mapping. kShared memory must
//                 already be MAP_SHARED (a memfd): that is the allocator's job (the shm transport
//                 maps memfds; private_region.cc maps one for kShared); this hook does not check.
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "pinring/fork_mode.h"

namespace pinring::internal {

// Call right before registering [addr, addr+len) under `mode` (before ibv_reg_mr /
// IORING_REGISTER_BUFFERS). Every OK call must be paired with ReleaseForkSafety() with the same
// arguments after deregistration. On error nothing was changed.
absl::Status ApplyForkSafety(void* addr, std::size_t len, ForkMode mode);

// Undoes ApplyForkSafety() after the memory is deregistered (and before it is unmapped, or the
// DOFORK madvise fails harmlessly). Never fails from the caller's view; problems are ignored
// (the range is gone either way).
void ReleaseForkSafety(void* addr, std::size_t len, ForkMode mode);

// ibv access flags a registration under `mode` should use, given what the device must do with it.
// device_writes=false means the device only reads (e.g. a submission ring pulled by the NIC).
//   kReadOnly      -> IBV_ACCESS_REMOTE_READ only (no LOCAL_WRITE: libibverbs/kernel pin read-only)
//   kWriteForRead  -> LOCAL_WRITE | REMOTE_READ | REMOTE_WRITE even when the device only reads
//   kOdp           -> ON_DEMAND | LOCAL_WRITE | REMOTE_READ (| REMOTE_WRITE when device_writes)
//   others         -> LOCAL_WRITE | REMOTE_READ (| REMOTE_WRITE when device_writes)
// kReadOnly with device_writes=true is a contradiction: returns -1.
int RegistrationAccessFor(ForkMode mode, bool device_writes);

}  // namespace pinring::internal
