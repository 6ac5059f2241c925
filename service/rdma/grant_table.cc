#include "service/rdma/grant_table.h"

#include <sys/random.h>

namespace pinring::ringd {
namespace {

std::uint64_t RandomKey() {
  std::uint64_t k = 0;
  while (k == 0) {
    if (getrandom(&k, sizeof k, 0) != static_cast<ssize_t>(sizeof k)) k = 0;
  }
  return k;
}

}  // namespace

std::optional<GrantTable::Exported> GrantTable::Export(std::uint32_t conn_id,
                                                std::uint32_t region_handle) {
  if (grants_.size() >= max_) return std::nullopt;
  std::uint32_t g = next_++;
  while (g == 0 || grants_.count(g) != 0) g = next_++;  // 2^32 exports later: skip live ones
  const std::uint64_t key = RandomKey();
  grants_[g] = Grant{conn_id, region_handle, key};
  return Exported{g, key};
}

bool GrantTable::Revoke(std::uint32_t conn_id, std::uint32_t grant) {
  auto it = grants_.find(grant);
  if (it == grants_.end() || it->second.conn_id != conn_id) return false;
  grants_.erase(it);
  return true;
}

void GrantTable::RevokeRegion(std::uint32_t conn_id, std::uint32_t region_handle) {
  std::erase_if(grants_, [&](const auto& g) {
    return g.second.conn_id == conn_id && g.second.region_handle == region_handle;
  });
}

void GrantTable::RevokeConnection(std::uint32_t conn_id) {
  std::erase_if(grants_, [&](const auto& g) { return g.second.conn_id == conn_id; });
}

const Grant* GrantTable::Find(std::uint32_t grant, std::uint64_t key) const {
  auto it = grants_.find(grant);
  if (it == grants_.end() || it->second.key != key) return nullptr;
  return &it->second;
}

}  // namespace pinring::ringd
