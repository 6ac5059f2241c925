// Counters, per client and global. Pollers and the event loop increment them with relaxed atomics
// (they are statistics: no other memory is ordered by them); the stats reply reads a snapshot.
#pragma once

#include <atomic>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "pinring/ring_format.h"

namespace pinring::ringd {

struct CountersSnapshot {
  std::uint64_t ops[kOpcodeCount] = {};
  std::uint64_t completions[kCompletionStatusCount] = {};  // by CompletionStatus
  std::uint64_t bytes_moved = 0;
  std::uint64_t doorbells = 0;           // doorbell eventfd reads / epoll wakes
  std::uint64_t wakeups = 0;             // completion eventfd writes (client was waiting)
  std::uint64_t registrations = 0;
  std::uint64_t deregistrations = 0;
  std::uint64_t queues_created = 0;
  std::uint64_t queue_errors = 0;        // queues stopped for a corrupt index or a memory fault
  std::uint64_t fences = 0;              // fenced descriptors that waited for earlier ones
  std::uint64_t chunks = 0;              // budgeted slices of large descriptors (tenant fairness)
  std::uint64_t wakes_dropped = 0;       // completion wakes the client's saturated eventfd refused
  std::uint64_t memory_faults = 0;       // descriptors/queues failed by a SIGBUS ringd absorbed

  CountersSnapshot& operator+=(const CountersSnapshot& o);
  nlohmann::json ToJson() const;
};

struct Counters {
  std::atomic<std::uint64_t> ops[kOpcodeCount] = {};
  std::atomic<std::uint64_t> completions[kCompletionStatusCount] = {};
  std::atomic<std::uint64_t> bytes_moved{0};
  std::atomic<std::uint64_t> doorbells{0};
  std::atomic<std::uint64_t> wakeups{0};
  std::atomic<std::uint64_t> registrations{0};
  std::atomic<std::uint64_t> deregistrations{0};
  std::atomic<std::uint64_t> queues_created{0};
  std::atomic<std::uint64_t> queue_errors{0};
  std::atomic<std::uint64_t> fences{0};
  std::atomic<std::uint64_t> chunks{0};
  std::atomic<std::uint64_t> wakes_dropped{0};
  std::atomic<std::uint64_t> memory_faults{0};

  // Relaxed increment: a statistic, not a synchronisation point.
  static void Add(std::atomic<std::uint64_t>& c, std::uint64_t v = 1) {
    c.fetch_add(v, std::memory_order_relaxed);
  }
  CountersSnapshot Snapshot() const;
};

}  // namespace pinring::ringd
