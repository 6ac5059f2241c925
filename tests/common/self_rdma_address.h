// The IPv4 address of this host's RDMA interface, for rdma transport clients that connect to a
// ringd on the same host (tests, benchmarks): PINRING_SELF_ADDR (the soft-RoCE harness sets it
// in guests), else the IPv4 address inside the first device's RoCE v2 GID, else "".
#pragma once

#include <arpa/inet.h>

#include <cstdlib>
#include <string>

#include "verbs/verbs_device.h"

namespace pinring::testing {

inline std::string SelfRdmaAddress() {
  if (const char* a = std::getenv("PINRING_SELF_ADDR"); a != nullptr && *a != '\0') return a;
  auto dev = VerbsDevice::Open();
  if (!dev.ok()) return "";
  const ibv_gid g = (*dev)->gid();
  char text[INET_ADDRSTRLEN] = {};
  if (inet_ntop(AF_INET, g.raw + 12, text, sizeof text) == nullptr) return "";
  return text;
}

}  // namespace pinring::testing
