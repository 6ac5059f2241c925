// The few values of ringd's shm wire protocol (wire/wire_protocol.h, internal) that the client
// API shows: how a queue rings ringd and waits for completions, and the limits ringd announces in
// its handshake. Everything else about the protocol stays out of the installed headers.
#pragma once

#include <cstdint>

namespace pinring::wire {

// Doorbell modes, per queue.
enum class DoorbellMode : std::uint8_t {
  kBusyPoll = 0,  // a ringd poller thread spins on the ring; never need-wakeup
  kEventfd = 1,   // ringd sleeps; the client writes the doorbell eventfd when kSqNeedWakeup is set
  kAdaptive = 2,  // ringd spins for adaptive_poll_us after the last work, then sets need-wakeup
};
inline constexpr std::uint8_t kDoorbellModeCount = 3;

// How the client waits for completions, per queue.
enum class CompletionWait : std::uint8_t {
  kSpin = 0,   // the client polls cq_tail
  kBlock = 1,  // the client sets kCqWaiting and blocks on the completion eventfd
};
inline constexpr std::uint8_t kCompletionWaitCount = 2;

struct Limits {
  std::uint32_t max_queues;
  std::uint32_t max_regions;
  std::uint32_t max_sq_entries;
  std::uint32_t max_cq_entries;
  std::uint64_t max_pinned_bytes;  // per client, all regions and rings together
  std::uint64_t max_region_bytes;
};

}  // namespace pinring::wire
