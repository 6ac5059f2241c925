// The data-plane backend: where the bytes of a validated descriptor move. Chosen once at start:
// `cpu` (memcpy in ringd) or `verbs` (the NIC moves them between pinned pages via a loopback RC
// QP). The rest of ringd sees only this interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "pinring/fork_mode.h"
#include "pinring/ring_format.h"

namespace pinring::ringd {

struct Region;  // service/region_table.h

// A descriptor the validator accepted (ValidateShmDescriptor, descriptor_validator.h), as the
// backends execute it: the private copy and the regions it names.
struct ValidatedOp {
  CompletionStatus status = CompletionStatus::kOk;  // kOk: safe to Execute
  Opcode opcode = Opcode::kNop;
  Descriptor desc{};             // the private copy that was validated
  const Region* src = nullptr;   // COPY, CHECKSUM
  const Region* dst = nullptr;   // COPY, FILL
  // CHECKSUM: the FNV-1a state to continue from. ringd splits a large descriptor into budgeted
  // slices (QueueServer); each slice continues the hash of the one before.
  std::uint64_t checksum_seed = kFnv1a64Seed;
};

// What a backend keeps for one registered range (verbs: the MR, i.e. the kernel pin). Destroying
// it unregisters (unpins) the range; it must die before the mapping it covers.
class BackendMemory {
 public:
  virtual ~BackendMemory() = default;
  virtual std::uint64_t pinned_bytes() const = 0;
  // Registered on demand (fork mode odp): counted apart from pinned bytes, never charged to
  // RLIMIT_MEMLOCK.
  virtual std::uint64_t odp_bytes() const { return 0; }
};

struct OpResult {
  CompletionStatus status = CompletionStatus::kOk;
  std::uint64_t result = 0;  // CHECKSUM: the checksum; COPY/FILL: bytes written
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual absl::string_view name() const = 0;  // "cpu" or "verbs"
  virtual std::string device() const = 0;      // RDMA device name, or ""
  // Work per queue per serving pass when --serve_budget_bytes is 0: under a microsecond of CPU
  // copying for cpu; one device chunk for verbs (each slice is a synchronous device operation).
  virtual std::uint64_t default_serve_budget() const = 0;

  // Makes [addr, addr+len) usable by Execute, registered the way `mode` asks: kReadOnly so the
  // device can only read it, kOdp on demand (nothing pinned), the others pinned with full access.
  // Errors: ResourceExhausted (RLIMIT_MEMLOCK, naming the fix); FailedPrecondition for kOdp on a
  // device without ODP (naming the device, the kernel and the modes to use instead); or the
  // device's error.
  virtual absl::StatusOr<std::unique_ptr<BackendMemory>> Register(void* addr, std::size_t len,
                                                                  ForkMode mode) = 0;
  // OK when a registration under `mode` can work here at all (odp: the device has ODP for RC).
  // ringd checks its --default_fork_mode with it at startup.
  virtual absl::Status CheckMode(ForkMode /*mode*/) const { return absl::OkStatus(); }

  // Executes one descriptor that ValidateDescriptor accepted. REQUIRES: op.status == kOk and the
  // regions op names stay registered for the duration (the caller holds the region table's lock).
  // Thread-safe: pollers call it concurrently.
  virtual OpResult Execute(const ValidatedOp& op) = 0;

  // Executes a batch a poller took from one ring: out[i] = the result of ops[i] for every op whose
  // status is kOk; the others' out[i] are left alone. Results are as if executed in order. The
  // default runs Execute one at a time; the verbs backend keeps a batch of RDMA WRITEs in flight.
  // REQUIRES: as Execute, and out.size() == ops.size().
  virtual void ExecuteBatch(absl::Span<const ValidatedOp> ops, absl::Span<OpResult> out);
};

std::unique_ptr<Backend> MakeCpuBackend();

// Opens `device` ("" = first) and builds the loopback QP. NotFound (naming the fix) with no device.
absl::StatusOr<std::unique_ptr<Backend>> MakeVerbsBackend(absl::string_view device, int gid_index);

}  // namespace pinring::ringd
