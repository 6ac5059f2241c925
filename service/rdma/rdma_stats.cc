#include "service/rdma/rdma_stats.h"

namespace pinring::ringd {

nlohmann::json RdmaStatsJson(const RdmaListenerStats& s, std::uint16_t port, bool admin) {
  nlohmann::json j;
  j["port"] = port;
  if (!admin) return j;
  j["connected"] = s.connected;
  j["accepted"] = s.accepted;
  j["rejected"] = s.rejected;
  j["failed"] = s.failed;
  j["closed"] = s.closed;
  j["descriptors"] = s.descriptors;
  j["inline_descriptors"] = s.inline_descriptors;
  j["grants"] = s.grants;
  j["peer_links"] = s.peer_links;
  j["ops_in_flight"] = s.ops_in_flight;
  j["connections"] = nlohmann::json::array();
  for (const RdmaConnectionInfo& c : s.connections) {
    j["connections"].push_back({{"id", c.id},
                                {"kind", c.peer ? "peer" : "client"},
                                {"remote", c.remote},
                                {"sq_entries", c.sq_entries},
                                {"cq_entries", c.cq_entries},
                                {"regions", c.regions},
                                {"descriptors", c.descriptors},
                                {"inline_descriptors", c.inline_descriptors},
                                {"pending", c.pending},
                                {"busy", c.busy}});
  }
  return j;
}

}  // namespace pinring::ringd
