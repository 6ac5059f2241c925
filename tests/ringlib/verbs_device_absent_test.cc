// What a user sees on a machine without an RDMA device: a NotFound that names the fix. Labelled
// unit because it is meaningful exactly where the rdma-labelled tests cannot run.
#include <gtest/gtest.h>

#include "common/require_device.h"
#include "verbs/verbs_device.h"

namespace pinring {
namespace {

TEST(VerbsDeviceTest, NoDeviceIsNotFoundNamingTheFix) {
  if (!::pinring::testing::FirstRdmaDevice().empty()) GTEST_SKIP() << "a device exists";
  auto d = VerbsDevice::Open();
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(d.status().message().find("--backend=cpu"), absl::string_view::npos);
}

}  // namespace
}  // namespace pinring
