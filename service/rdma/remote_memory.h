// REMOTE_WRITE / REMOTE_READ: moving data between a client's region and a grant, which lives in
// another client of this ringd (the data goes through the owner connection's QP) or behind
// another ringd (through a peer link). Also the granting side of a peer ringd's PeerOp.
//
// Calls only go down: a connection's task calls in here, and this reaches the owner connection
// (Connection::ForeignOp) or a peer link, never the listener.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "absl/status/statusor.h"
#include "wire/rdma_wire.h"
#include "pinring/ring_format.h"
#include "service/rdma/context.h"
#include "service/rdma/grant_table.h"
#include "service/rdma/peer_link.h"
#include "service/rdma/rdma_executor.h"
#include "service/rdma/task.h"

namespace pinring::ringd {

class Connection;

class RemoteMemory {
 public:
  using Connections = std::map<std::uint32_t, std::unique_ptr<Connection>>;
  RemoteMemory(TransportContext& ctx, GrantTable& grants, const Connections& conns,
               PeerPool& peers)
      : ctx_(ctx), grants_(grants), conns_(conns), peers_(peers) {}

  GrantTable& grants() { return grants_; }

  // A REMOTE op of `requester` whose local side ValidateRdmaDescriptor accepted.
  rdma_async::Task<CompletionStatus> Remote(Connection& requester, Descriptor d,
                                            std::uint64_t* result);
  // The granting side of a peer ringd's PeerOp, received on `link` (a peer connection). Completes
  // with the status for the reply, or an error when `link` failed or broke the protocol.
  rdma_async::Task<absl::StatusOr<CompletionStatus>> ServePeerOp(Connection& link,
                                                                 rdma::PeerOp op);

 private:
  // Grant side of one transfer: the checks and the grant's region.
  CompletionStatus CheckGrant(std::uint32_t handle, std::uint64_t key, std::uint64_t offset,
                              std::uint64_t len, bool write, const Connection& requester,
                              Connection** owner, GrantedRegion* region);
  bool IsLocalNode(const Connection& c, std::uint64_t node) const;

  TransportContext& ctx_;
  GrantTable& grants_;
  const Connections& conns_;
  PeerPool& peers_;
};

}  // namespace pinring::ringd
