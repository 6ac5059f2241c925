// The rule for tests of fork mode odp (label odp, run by scripts/test.sh in a --kernel=7 guest):
//   - the device must report ODP for RC, or the test FAILS (the label runs only where it should);
//   - a driver whose on-demand memory fails VerbsDevice::CheckOnDemand's data self-test (rxe in
//     Debian's 7.2 and 7.3 kernels misplaces bytes within a page) makes the test SKIP, printing
//     the self-test's finding: pinring refuses odp there, and ringd_odp_support_test checks that
//     refusal on every guest kernel.
// $PINRING_EXPECT_ODP (0 or 1, set by scripts/test.sh per guest kernel) must match the device's
// capability bits, so a test never takes the wrong branch unnoticed.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "require_device.h"
#include "verbs/verbs_device.h"

namespace pinring::testing {

struct OdpState {
  bool open = false;        // a device could be opened
  std::string device;
  bool caps = false;        // ODP with RC SEND, RECV, WRITE, READ in ibv_query_device_ex
  absl::Status usable;      // VerbsDevice::CheckOnDemand(): caps and the data self-test
};

inline OdpState ProbeOdp() {
  OdpState st;
  auto dev = VerbsDevice::Open();
  if (!dev.ok()) {
    st.usable = dev.status();
    return st;
  }
  st.open = true;
  st.device = (*dev)->name();
  constexpr std::uint32_t kRc =
      IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ;
  st.caps = (*dev)->odp_caps().supported && ((*dev)->odp_caps().rc_caps & kRc) == kRc;
  st.usable = (*dev)->CheckOnDemand();
  if (const char* want = std::getenv("PINRING_EXPECT_ODP"); want != nullptr && *want != '\0') {
    EXPECT_EQ(st.caps, std::strcmp(want, "1") == 0)
        << "PINRING_EXPECT_ODP=" << want << " but " << st.device << (st.caps ? " has" : " has no")
        << " ODP for RC";
  }
  return st;
}

}  // namespace pinring::testing

// At the top of a TEST body of label odp.
#define PINRING_REQUIRE_WORKING_ODP()                                                          \
  do {                                                                                         \
    PINRING_REQUIRE_RDMA_DEVICE();                                                             \
    const ::pinring::testing::OdpState odp_state_ = ::pinring::testing::ProbeOdp();            \
    ASSERT_TRUE(odp_state_.open) << odp_state_.usable;                                         \
    ASSERT_TRUE(odp_state_.caps)                                                               \
        << "label odp runs only on a device with ODP for RC (deploy/softroce/pinring-rxe run " \
           "--kernel=7); "                                                                     \
        << odp_state_.device << " has none: " << odp_state_.usable;                            \
    if (!odp_state_.usable.ok()) {                                                             \
      GTEST_SKIP() << "odp is refused on this device, as it must be: "                         \
                   << odp_state_.usable.message();                                             \
    }                                                                                          \
  } while (0)
