// The end-to-end data check against `ringd --backend=verbs`: the same bytes, now moved by the
// RDMA device against pinned pages. Needs a device (soft-RoCE in the harness guest).
#include <gtest/gtest.h>

#include "client_test_util.h"
#include "common/require_device.h"

namespace pinring {
namespace {

using ::pinring::testing::EndToEndDataCheck;
using ::pinring::testing::OptionsFor;
using ::pinring::testing::StartRingdOrDie;

TEST(ClientRdma, EndToEndDataVerificationOnVerbsBackend) {
  PINRING_REQUIRE_RDMA_DEVICE();
  auto ringd = StartRingdOrDie("verbs");
  ASSERT_NE(ringd, nullptr);
  auto client = Client::Connect(OptionsFor(*ringd));
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ(client->info().backend, "verbs");
  EXPECT_FALSE(client->info().device.empty());
  EXPECT_EQ(EndToEndDataCheck(*client, 256 * 1024, 0x5c), "");
}

TEST(ClientRdma, EveryDoorbellModeOnVerbsBackend) {
  PINRING_REQUIRE_RDMA_DEVICE();
  auto ringd = StartRingdOrDie("verbs");
  ASSERT_NE(ringd, nullptr);
  auto client = Client::Connect(OptionsFor(*ringd));
  ASSERT_TRUE(client.ok()) << client.status();
  RegionOptions ro;
  ro.size = 64 * 1024;
  auto region = client->CreateRegion(ro);
  ASSERT_TRUE(region.ok()) << region.status();
  for (auto mode : {wire::DoorbellMode::kBusyPoll, wire::DoorbellMode::kEventfd,
                    wire::DoorbellMode::kAdaptive}) {
    for (auto wait : {wire::CompletionWait::kSpin, wire::CompletionWait::kBlock}) {
      QueueOptions qo;
      qo.sq_entries = 16;
      qo.doorbell = mode;
      qo.completion_wait = wait;
      auto q = client->CreateQueue(qo);
      ASSERT_TRUE(q.ok()) << q.status();
      for (int i = 0; i < 40; ++i) {  // wraps the 16-entry ring
        const auto byte = static_cast<std::uint8_t>(i * 3 + static_cast<int>(mode));
        auto c = q->SubmitAndWait(MakeFill(region->handle(), 0, ro.size, byte), absl::Seconds(10));
        ASSERT_TRUE(c.ok()) << c.status();
        ASSERT_EQ(c->status, 0);
        ASSERT_EQ(region->data()[ro.size - 1], std::byte{byte});
        auto sum = q->SubmitAndWait(MakeChecksum(region->handle(), 0, ro.size), absl::Seconds(10));
        ASSERT_TRUE(sum.ok()) << sum.status();
        ASSERT_EQ(sum->result, Fnv1a64(region->bytes()));
      }
    }
  }
}

}  // namespace
}  // namespace pinring
