// The one rule for tests that need an RDMA device: with no device they SKIP and say why, unless
// PINRING_REQUIRE_DEVICE=1 (set by the soft-RoCE harness), where a missing device is a FAILURE.
// A test that needs a device never passes silently without one.
#pragma once

#include <infiniband/verbs.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace pinring::testing {

// Name of the first RDMA device, or "" when there is none.
inline std::string FirstRdmaDevice() {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  std::string name;
  if (list != nullptr && n > 0) name = ibv_get_device_name(list[0]);
  if (list != nullptr) ibv_free_device_list(list);
  return name;
}

inline bool DeviceRequired() {
  const char* v = std::getenv("PINRING_REQUIRE_DEVICE");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace pinring::testing

// Use at the top of a TEST body (or SetUp) that needs an RDMA device.
#define PINRING_REQUIRE_RDMA_DEVICE()                                                          \
  do {                                                                                         \
    if (::pinring::testing::FirstRdmaDevice().empty()) {                                       \
      if (::pinring::testing::DeviceRequired()) {                                              \
        FAIL() << "PINRING_REQUIRE_DEVICE=1 but ibv_get_device_list() found no RDMA device";   \
      }                                                                                        \
      GTEST_SKIP() << "no RDMA device (ibv_get_device_list() is empty); run through "          \
                      "deploy/softroce/pinring-rxe run -- ... to get a soft-RoCE device";      \
    }                                                                                          \
  } while (0)
