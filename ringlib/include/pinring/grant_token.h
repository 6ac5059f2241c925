// A grant of the rdma transport: the capability a client hands to another client (of the same or
// another ringd) so that it may REMOTE_WRITE / REMOTE_READ one of its regions. Part of the client
// API (RdmaQueue::ExportRegion); the rest of the rdma wire protocol is internal (wire/rdma_wire.h).
#pragma once

#include <cstdint>

namespace pinring::rdma {

// A grant: one region of one client, exported by its ringd so that other clients (of the same
// ringd or of another) can name it in REMOTE_WRITE / REMOTE_READ. Whoever holds the token may use
// the region (the key is the capability) until the owner revokes the grant or the region dies.
struct GrantToken {
  std::uint64_t node = 0;    // NodeId(ipv4, port) of the granting ringd
  std::uint32_t handle = 0;  // grant handle (not the owner's region handle)
  std::uint64_t key = 0;     // random 64-bit capability
};
// node = IPv4 (host byte order) << 16 | rdma_cm port. 0 in a descriptor = "my own ringd".
constexpr std::uint64_t NodeId(std::uint32_t ipv4_host_order, std::uint16_t port) {
  return (std::uint64_t{ipv4_host_order} << 16) | port;
}
constexpr std::uint32_t NodeAddr(std::uint64_t node) {
  return static_cast<std::uint32_t>(node >> 16);
}
constexpr std::uint16_t NodePort(std::uint64_t node) {
  return static_cast<std::uint16_t>(node & 0xffff);
}

}  // namespace pinring::rdma
