// The two primitives every user of a QP in this project shares (ringlib/verbs, internal):
//   - FillWorkRequest: the one builder of a send work request (SEND, RDMA WRITE, RDMA READ) of
//     one scatter-gather entry;
//   - SpinUntil: the one "poll until this completes or the deadline passes" loop.
// LoopbackQp (verbs_device.h) and RdmaChannel (rdma_channel.h) post through the first; the
// synchronous waits of LoopbackQp and of RdmaQueue spin through the second. ringd's rdma
// transport never spins: it awaits (service/rdma/task.h).
#pragma once

#include <infiniband/verbs.h>
#include <sched.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pinring::verbs {

// [local_addr, +len) under lkey on this side; for RDMA ops [remote_addr, +len) under rkey on the
// other. len 0 posts no SGE (a zero-length SEND or WRITE is legal).
inline void FillWorkRequest(ibv_wr_opcode opcode, std::uint64_t local_addr, std::uint32_t lkey,
                            std::uint32_t len, std::uint64_t remote_addr, std::uint32_t rkey,
                            std::uint64_t wr_id, bool signaled, ibv_sge* sge,
                            ibv_send_wr* wr) {
  *sge = {};
  sge->addr = local_addr;
  sge->length = len;
  sge->lkey = lkey;
  *wr = {};
  wr->wr_id = wr_id;
  wr->sg_list = sge;
  wr->num_sge = len == 0 ? 0 : 1;
  wr->opcode = opcode;
  wr->send_flags = signaled ? IBV_SEND_SIGNALED : 0;
  if (opcode != IBV_WR_SEND) {
    wr->wr.rdma.remote_addr = remote_addr;
    wr->wr.rdma.rkey = rkey;
  }
}

// Calls step() until it reports done (true) or fails, reading the clock (and yielding the CPU:
// under emulation rxe's kernel thread may need the one we spin on) only every `check_every`
// steps that were not done. A device completes in microseconds; the clock is a system call on
// some hypervisors. DeadlineExceeded naming `what` once `deadline` passed.
template <typename Step>
absl::Status SpinUntil(absl::Time deadline, const char* what, Step step,
                       std::uint32_t check_every = 1024) {
  for (std::uint32_t spins = 1;; ++spins) {
    absl::StatusOr<bool> done = step();
    if (!done.ok()) return done.status();
    if (*done) return absl::OkStatus();
    if (spins % check_every == 0) {
      if (absl::Now() > deadline) return absl::DeadlineExceededError(absl::StrCat(what));
      sched_yield();
    }
  }
}

}  // namespace pinring::verbs
