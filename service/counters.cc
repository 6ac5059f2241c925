#include "service/counters.h"

#include <string>

namespace pinring::ringd {

CountersSnapshot& CountersSnapshot::operator+=(const CountersSnapshot& o) {
  for (int i = 0; i < kOpcodeCount; ++i) ops[i] += o.ops[i];
  for (int i = 0; i < kCompletionStatusCount; ++i) completions[i] += o.completions[i];
  bytes_moved += o.bytes_moved;
  doorbells += o.doorbells;
  wakeups += o.wakeups;
  registrations += o.registrations;
  deregistrations += o.deregistrations;
  queues_created += o.queues_created;
  queue_errors += o.queue_errors;
  fences += o.fences;
  chunks += o.chunks;
  wakes_dropped += o.wakes_dropped;
  memory_faults += o.memory_faults;
  return *this;
}

nlohmann::json CountersSnapshot::ToJson() const {
  static constexpr const char* kOpNames[kOpcodeCount] = {"nop", "copy", "checksum", "fill"};
  nlohmann::json j;
  for (int i = 0; i < kOpcodeCount; ++i) j["ops"][kOpNames[i]] = ops[i];
  for (int i = 0; i < kCompletionStatusCount; ++i) {
    j["completions"][CompletionStatusName(static_cast<CompletionStatus>(i))] = completions[i];
  }
  j["bytes_moved"] = bytes_moved;
  j["doorbells"] = doorbells;
  j["wakeups"] = wakeups;
  j["registrations"] = registrations;
  j["deregistrations"] = deregistrations;
  j["queues_created"] = queues_created;
  j["queue_errors"] = queue_errors;
  j["fences"] = fences;
  j["chunks"] = chunks;
  j["wakes_dropped"] = wakes_dropped;
  j["memory_faults"] = memory_faults;
  return j;
}

CountersSnapshot Counters::Snapshot() const {
  CountersSnapshot s;
  for (int i = 0; i < kOpcodeCount; ++i) s.ops[i] = ops[i].load(std::memory_order_relaxed);
  for (int i = 0; i < kCompletionStatusCount; ++i) {
    s.completions[i] = completions[i].load(std::memory_order_relaxed);
  }
  s.bytes_moved = bytes_moved.load(std::memory_order_relaxed);
  s.doorbells = doorbells.load(std::memory_order_relaxed);
  s.wakeups = wakeups.load(std::memory_order_relaxed);
  s.registrations = registrations.load(std::memory_order_relaxed);
  s.deregistrations = deregistrations.load(std::memory_order_relaxed);
  s.queues_created = queues_created.load(std::memory_order_relaxed);
  s.queue_errors = queue_errors.load(std::memory_order_relaxed);
  s.fences = fences.load(std::memory_order_relaxed);
  s.chunks = chunks.load(std::memory_order_relaxed);
  s.wakes_dropped = wakes_dropped.load(std::memory_order_relaxed);
  s.memory_faults = memory_faults.load(std::memory_order_relaxed);
  return s;
}

}  // namespace pinring::ringd
