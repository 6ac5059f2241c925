// Execution of one descriptor of the rdma transport: NOP, COPY, CHECKSUM, FILL against regions
// that live in the client's memory, reached with RDMA READ / WRITE through a bounce buffer in
// ringd's memory. Validation (the same rules and statuses as the shm transport, ring_format.h)
// runs on ringd's private copy of the descriptor against ringd's table of granted regions.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "pinring/ring_format.h"

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

// What the executor needs from a connection.
class RemoteOps {
 public:
  virtual ~RemoteOps() = default;
  // Synchronous RDMA READ of [remote_addr, +len) into bounce()[0, len) / WRITE of bounce()[0, len)
  // to [remote_addr, +len). REQUIRES: len <= bounce_size(). An error means the connection failed.
  virtual absl::Status Read(std::uint64_t remote_addr, std::uint32_t rkey, std::uint32_t len) = 0;
  virtual absl::Status Write(std::uint64_t remote_addr, std::uint32_t rkey, std::uint32_t len) = 0;
  virtual std::byte* bounce() = 0;
  virtual std::uint32_t bounce_size() = 0;
  virtual const GrantedRegion* Lookup(std::uint32_t handle) = 0;
  // REMOTE_WRITE / REMOTE_READ whose local side ValidateRdmaDescriptor accepted: checks the grant
  // the descriptor names (its own ringd or a peer) and moves the data. kDeviceError when the
  // transport failed (this connection's, the grant owner's or the peer link's).
  virtual CompletionStatus Remote(const Descriptor& d, std::uint64_t* result) = 0;
};

inline bool IsRemoteOpcode(std::uint8_t opcode) {
  return opcode == kOpRemoteWrite ||
         opcode == kOpRemoteRead;
}

// Validates `d` (ringd's private copy) and executes it. Returns the completion status and sets
// *result (CHECKSUM: the FNV-1a 64; COPY/FILL: bytes written). A transport failure returns
// kDeviceError; the connection's error then says why.
CompletionStatus ExecuteOne(const Descriptor& d, RemoteOps& ops, std::uint64_t* result);

// Validation alone (no memory touched). kOk: ExecuteOne may run the operation.
CompletionStatus ValidateRdmaDescriptor(const Descriptor& d, RemoteOps& ops);

}  // namespace pinring::ringd
