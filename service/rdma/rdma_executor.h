// Execution of one descriptor of the rdma transport: NOP, COPY, CHECKSUM, FILL against regions
// that live in the client's memory, reached with RDMA READ / WRITE through a bounce buffer in
// ringd's memory. Validation (the same rules and statuses as the shm transport, ring_format.h)
// runs on ringd's private copy of the descriptor against ringd's table of granted regions.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "pinring/ring_format.h"
#include "service/rdma/task.h"

namespace pinring::ringd {

inline constexpr std::uint32_t kBounceBytes = 64 * 1024;

// A region ringd granted to a client: the client's claim (address, length, rkey, writability),
// bounded at registration; the NIC enforces the real MR on every access.
struct GrantedRegion {
  std::uint64_t addr = 0;
  std::uint64_t length = 0;
  std::uint32_t rkey = 0;
  bool writable = false;
};

// What validation needs: the regions the connection was granted.
class RegionLookup {
 public:
  virtual ~RegionLookup() = default;
  virtual const GrantedRegion* Lookup(std::uint32_t handle) = 0;
};

// What execution needs from a connection. Every data access is an RDMA operation that suspends
// the calling coroutine only (task.h): other connections progress meanwhile.
class RemoteOps : public RegionLookup {
 public:
  // RDMA READ of [remote_addr, +len) into bounce()[0, len) / WRITE of bounce()[0, len) to
  // [remote_addr, +len). REQUIRES: len <= bounce_size(). An error means the connection failed.
  virtual rdma_async::Task<absl::Status> Read(std::uint64_t remote_addr, std::uint32_t rkey,
                                              std::uint32_t len) = 0;
  virtual rdma_async::Task<absl::Status> Write(std::uint64_t remote_addr, std::uint32_t rkey,
                                               std::uint32_t len) = 0;
  virtual std::byte* bounce() = 0;
  virtual std::uint32_t bounce_size() = 0;
  // REMOTE_WRITE / REMOTE_READ whose local side ValidateRdmaDescriptor accepted: checks the grant
  // the descriptor names (its own ringd or a peer) and moves the data. kDeviceError when the
  // transport failed (this connection's, the grant owner's or the peer link's).
  virtual rdma_async::Task<CompletionStatus> Remote(Descriptor d, std::uint64_t* result) = 0;
};

inline bool IsRemoteOpcode(std::uint8_t opcode) {
  return opcode == kOpRemoteWrite ||
         opcode == kOpRemoteRead;
}

// Validates `d` (ringd's private copy) and executes it. Completes with the status and sets
// *result (CHECKSUM: the FNV-1a 64; COPY/FILL: bytes written). A transport failure completes
// with kDeviceError; the connection's error then says why.
rdma_async::Task<CompletionStatus> ExecuteOne(Descriptor d, RemoteOps& ops,
                                              std::uint64_t* result);

// Validation alone (no memory touched). kOk: ExecuteOne may run the operation.
CompletionStatus ValidateRdmaDescriptor(const Descriptor& d, RegionLookup& regions);

}  // namespace pinring::ringd
