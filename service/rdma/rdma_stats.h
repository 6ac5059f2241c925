// The rdma transport's section of ringd's stats (StatsJson, `ringctl status`, `ringctl metrics`).
// rdma connections carry no Unix credentials, so only an admin peer sees them; anyone else sees
// that the transport listens, and on which port.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "service/rdma/rdma_listener.h"

namespace pinring::ringd {

nlohmann::json RdmaStatsJson(const RdmaListenerStats& s, std::uint16_t port, bool admin);

}  // namespace pinring::ringd
