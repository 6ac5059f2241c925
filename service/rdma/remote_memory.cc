#include "service/rdma/remote_memory.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "service/rdma/connection.h"

namespace pinring::ringd {

static_assert(kBounceBytes == rdma::kPeerChunkBytes, "one peer chunk fits one bounce buffer");

CompletionStatus RemoteMemory::CheckGrant(std::uint32_t handle, std::uint64_t key,
                                          std::uint64_t offset, std::uint64_t len, bool write,
                                          const Connection& requester, Connection** owner,
                                          GrantedRegion* region) {
  // Untrusted handle, key, offset and length (a client's descriptor or a peer ringd's PeerOp).
  // A revoked grant, a wrong key, a dead owner or a destroyed region all look the same.
  const Grant* g = grants_.Find(handle, key);
  if (g == nullptr) return CompletionStatus::kUnknownRegion;
  auto o = conns_.find(g->conn_id);
  if (o == conns_.end() || !o->second->usable()) return CompletionStatus::kUnknownRegion;
  const GrantedRegion* r = o->second->Lookup(g->region_handle);
  if (r == nullptr) return CompletionStatus::kUnknownRegion;
  if (offset > r->length || len > r->length - offset) return CompletionStatus::kOutOfBounds;
  if (write && !r->writable) return CompletionStatus::kReadOnlyRegion;
  // The data moves through the requester's bounce buffer on the owner's QP: same PD needed.
  if (o->second->device() != requester.device()) return CompletionStatus::kDeviceError;
  *owner = o->second.get();
  *region = *r;
  return CompletionStatus::kOk;
}

bool RemoteMemory::IsLocalNode(const Connection& c, std::uint64_t node) const {
  if (node == 0) return true;
  if (rdma::NodePort(node) != ctx_.port) return false;
  return c.local_ipv4() == rdma::NodeAddr(node);
}

rdma_async::Task<CompletionStatus> RemoteMemory::Remote(Connection& c, Descriptor d,
                                                        std::uint64_t* result) {
  // ValidateRdmaDescriptor accepted the local side (region, bounds, writability) and the grant
  // side's offset + length does not overflow.
  const bool write = d.opcode == kOpRemoteWrite;
  const GrantedRegion local = *c.Lookup(write ? d.src_region : d.dst_region);
  const std::uint64_t local_off = write ? d.src_offset : d.dst_offset;
  const std::uint32_t handle = write ? d.dst_region : d.src_region;
  const std::uint64_t grant_off = write ? d.dst_offset : d.src_offset;
  const std::uint64_t key = d.value;
  const std::uint64_t node = d.reserved2;
  *result = 0;
  if (IsLocalNode(c, node)) {
    for (std::uint64_t done = 0; done < d.length;) {
      // The grant is checked again for every chunk: its owner runs meanwhile and may revoke it,
      // deregister the region or go away.
      Connection* owner = nullptr;
      GrantedRegion region;
      const CompletionStatus st =
          CheckGrant(handle, key, grant_off, d.length, write, c, &owner, &region);
      if (st != CompletionStatus::kOk) co_return st;
      const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(kBounceBytes,
                                                                        d.length - done));
      if (write) {
        if (!(co_await c.Read(local.addr + local_off + done, local.rkey, n)).ok()) {
          co_return CompletionStatus::kDeviceError;
        }
        // The owner's failure is the owner's: its QP broke, and it is failed.
        if (!(co_await owner->ForeignOp(IBV_WR_RDMA_WRITE, c.staging_mr(), c.bounce_offset(), n,
                                        region.addr + grant_off + done, region.rkey))
                 .ok()) {
          co_return CompletionStatus::kDeviceError;
        }
      } else {
        if (!(co_await owner->ForeignOp(IBV_WR_RDMA_READ, c.staging_mr(), c.bounce_offset(), n,
                                        region.addr + grant_off + done, region.rkey))
                 .ok() ||
            !(co_await c.Write(local.addr + local_off + done, local.rkey, n)).ok()) {
          co_return CompletionStatus::kDeviceError;
        }
      }
      done += n;
    }
    *result = d.length;
    co_return CompletionStatus::kOk;
  }
  // Another ringd's grant: forward chunk by chunk over the peer link (connected on demand).
  for (std::uint64_t done = 0; done < d.length;) {
    auto peer = co_await peers_.Get(node);
    if (!peer.ok()) {
      ctx_.Log(absl::StrCat("connection ", c.id(), ": ", peer.status().ToString()));
      co_return CompletionStatus::kDeviceError;
    }
    PeerLink* p = *peer;
    const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(kBounceBytes,
                                                                      d.length - done));
    if (write && !(co_await c.Read(local.addr + local_off + done, local.rkey, n)).ok()) {
      co_return CompletionStatus::kDeviceError;
    }
    auto st = co_await p->Request(write ? rdma::kPeerWrite : rdma::kPeerRead, handle, key,
                                  grant_off + done, c.bounce(), n);
    if (!st.ok()) {
      // The link is gone: this op fails, the next one reconnects.
      ctx_.Log(absl::StrCat("peer link to node 0x", absl::Hex(node), " lost: ",
                            st.status().ToString()));
      peers_.Drop(p);
      co_return CompletionStatus::kDeviceError;
    }
    if (*st != CompletionStatus::kOk) co_return *st;
    if (!write && !(co_await c.Write(local.addr + local_off + done, local.rkey, n)).ok()) {
      co_return CompletionStatus::kDeviceError;
    }
    done += n;
  }
  *result = d.length;
  co_return CompletionStatus::kOk;
}

rdma_async::Task<absl::StatusOr<CompletionStatus>> RemoteMemory::ServePeerOp(Connection& c,
                                                                              rdma::PeerOp op) {
  // Untrusted: a peer ringd. A chunk larger than our buffer or an unknown direction is a protocol
  // violation (the connection ends); grant problems are statuses in the reply.
  if (op.length == 0 || op.length > rdma::kPeerChunkBytes ||
      (op.direction != rdma::kPeerWrite && op.direction != rdma::kPeerRead)) {
    co_return absl::InvalidArgumentError(
        absl::StrCat("bad peer op (length ", op.length, ", direction ", op.direction, ")"));
  }
  const bool write = op.direction == rdma::kPeerWrite;
  Connection* owner = nullptr;
  GrantedRegion region;
  CompletionStatus st =
      CheckGrant(op.handle, op.key, op.offset, op.length, write, c, &owner, &region);
  if (st != CompletionStatus::kOk) co_return st;
  if (write) {
    // The peer's buffer through its rkey (the NIC checks it), then into the grant.
    if (absl::Status s = co_await c.Read(op.buf_addr, op.buf_rkey, op.length); !s.ok()) {
      co_return s;
    }
    // The owner may have gone while we read.
    st = CheckGrant(op.handle, op.key, op.offset, op.length, write, c, &owner, &region);
    if (st != CompletionStatus::kOk) co_return st;
    if (!(co_await owner->ForeignOp(IBV_WR_RDMA_WRITE, c.staging_mr(), c.bounce_offset(),
                                    op.length, region.addr + op.offset, region.rkey))
             .ok()) {
      co_return CompletionStatus::kDeviceError;
    }
    co_return CompletionStatus::kOk;
  }
  if (!(co_await owner->ForeignOp(IBV_WR_RDMA_READ, c.staging_mr(), c.bounce_offset(), op.length,
                                  region.addr + op.offset, region.rkey))
           .ok()) {
    co_return CompletionStatus::kDeviceError;
  }
  // RC ordering: this WRITE's data lands before the reply SEND.
  if (absl::Status s = co_await c.Write(op.buf_addr, op.buf_rkey, op.length); !s.ok()) {
    co_return s;
  }
  co_return CompletionStatus::kOk;
}

}  // namespace pinring::ringd
