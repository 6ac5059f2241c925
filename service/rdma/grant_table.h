// The grants of ringd's rdma transport: regions a client exported so that other clients (of this
// ringd or, through a peer link, of another) may name them in REMOTE_WRITE / REMOTE_READ. A grant
// is a capability: its handle plus a random 64-bit key. See docs/rdma-transport.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace pinring::ringd {

struct Grant {
  std::uint32_t conn_id = 0;        // the owner connection
  std::uint32_t region_handle = 0;  // the owner's region
  std::uint64_t key = 0;
};

class GrantTable {
 public:
  explicit GrantTable(std::uint64_t max_grants) : max_(max_grants) {}
  struct Exported {
    std::uint32_t grant = 0;
    std::uint64_t key = 0;
  };
  // A new grant of `conn`'s region `handle`; nullopt when the table is full.
  std::optional<Exported> Export(std::uint32_t conn_id, std::uint32_t region_handle);
  // Only the owner may revoke a grant. False when `grant` is not one of `conn_id`'s.
  bool Revoke(std::uint32_t conn_id, std::uint32_t grant);
  // The region is gone (deregistered) or the connection is: its grants go with it.
  void RevokeRegion(std::uint32_t conn_id, std::uint32_t region_handle);
  void RevokeConnection(std::uint32_t conn_id);
  // Untrusted handle and key (a client's descriptor, a peer ringd's PeerOp): the grant they name,
  // or nullptr. A revoked grant and a wrong key look the same.
  const Grant* Find(std::uint32_t grant, std::uint64_t key) const;
  std::size_t size() const { return grants_.size(); }

 private:
  std::uint64_t max_;
  std::map<std::uint32_t, Grant> grants_;
  std::uint32_t next_ = 1;
};

}  // namespace pinring::ringd
