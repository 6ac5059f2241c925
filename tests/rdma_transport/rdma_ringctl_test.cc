// ringctl sees rdma clients (issue 14, part 3): a real ringd with its rdma listener, a real
// RdmaQueue client, then `ringctl status` and `ringctl metrics` against that ringd. The rdma
// section is admin-only (rdma connections carry no uid); the test runs as root in the guest.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/ringd_process.h"
#include "rdma_test_util.h"

namespace pinring {
namespace {

std::string Output(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "popen failed";
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  pclose(p);
  return out;
}

TEST(RdmaRingctl, StatusAndMetricsShowRdmaClients) {
  PINRING_REQUIRE_RDMA_DEVICE();
  if (geteuid() != 0) GTEST_SKIP() << "the rdma section is admin-only: run as root (the guest)";
  constexpr std::uint16_t kPort = 18556;
  auto ringd = testing::RingdProcess::Start({"--backend=cpu", absl::StrCat("--rdma_port=", kPort)});
  ASSERT_TRUE(ringd.ok()) << ringd.status();
  RdmaQueueOptions o;
  o.address = testing::SelfRdmaAddress();
  o.port = kPort;
  o.sq_entries = 16;
  auto q = RdmaQueue::Connect(o);
  for (int i = 0; i < 50 && !q.ok(); ++i) {  // the listener may start just after the socket
    absl::SleepFor(absl::Milliseconds(100));
    q = RdmaQueue::Connect(o);
  }
  ASSERT_TRUE(q.ok()) << q.status() << "\n" << (*ringd)->Stderr();
  auto region = (*q)->CreateRegion(4096);
  ASSERT_TRUE(region.ok()) << region.status();
  for (int i = 0; i < 7; ++i) {
    auto c = (*q)->SubmitAndWait(testing::Nop(i), absl::Seconds(30));
    ASSERT_TRUE(c.ok()) << c.status();
  }
  // The listener publishes its connection table at most every 100 ms.
  absl::SleepFor(absl::Milliseconds(300));
  const std::string ringctl =
      absl::StrCat(PINRING_RINGCTL_PATH, " --socket=", (*ringd)->socket_path());
  const std::string status = Output(ringctl + " status");
  EXPECT_NE(status.find("rdma transport"), std::string::npos) << status;
  EXPECT_NE(status.find("rdma connections (1)"), std::string::npos) << status;
  EXPECT_NE(status.find("client"), std::string::npos) << status;
  EXPECT_NE(status.find(testing::SelfRdmaAddress()), std::string::npos) << status;
  const std::string metrics = Output(ringctl + " metrics");
  EXPECT_NE(metrics.find("pinring_rdma_connections 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("pinring_rdma_descriptors_total 7"), std::string::npos) << metrics;
  // Single-descriptor submissions travel inline in the doorbell (rdma_wire.h).
  EXPECT_NE(metrics.find("pinring_rdma_inline_descriptors_total 7"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("pinring_rdma_connection_descriptors_total{connection=\"1\""),
            std::string::npos)
      << metrics;
}

}  // namespace
}  // namespace pinring
