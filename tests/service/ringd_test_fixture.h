// The fixture of the tests that run against a real ringd process with PINRING_TEST_BACKEND (cpu on
// the host, verbs in the soft-RoCE guest): start it, connect raw clients that said Hello, and stop
// it with SIGTERM at the end, expecting a clean exit. Shared by ringd_integration_test.cc and
// ringd_isolation_test.cc.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/require_device.h"
#include "common/ringd_process.h"
#include "raw_client.h"

#ifndef PINRING_TEST_BACKEND
#define PINRING_TEST_BACKEND "cpu"
#endif

namespace pinring::testing {

inline constexpr bool kVerbs = std::string_view(PINRING_TEST_BACKEND) == "verbs";

class RingdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kVerbs) {
      PINRING_REQUIRE_RDMA_DEVICE();
    }
  }
  // Starts ringd with `extra` and the test's --backend. A failure to start is fatal: call it as
  // ASSERT_NO_FATAL_FAILURE(Start(...)) where the test goes on to use ringd_.
  void Start(std::vector<std::string> extra = {}) {
    extra.push_back(std::string("--backend=") + PINRING_TEST_BACKEND);
    auto r = RingdProcess::Start(extra);
    ASSERT_TRUE(r.ok()) << r.status();
    ringd_ = std::move(*r);
  }
  // A raw client that completed Hello as `name`; nullptr (with a test failure) otherwise.
  std::unique_ptr<RawClient> Connect(const std::string& name = "test") {
    auto c = RawClient::Connect(ringd_->socket_path());
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return nullptr;
    auto h = (*c)->Hello(name);
    EXPECT_TRUE(h.ok()) << h.status();
    return std::move(*c);
  }
  // SIGTERM must stop ringd whatever the test did: exit code 0 within `timeout`.
  void ExpectCleanStop(absl::Duration timeout = absl::Seconds(30)) {
    auto rc = ringd_->Stop(SIGTERM, timeout);
    ASSERT_TRUE(rc.ok()) << rc.status() << "\n" << ringd_->Stderr();
    EXPECT_EQ(*rc, 0) << ringd_->Stderr();
  }
  void TearDown() override {
    if (ringd_ != nullptr && ringd_->Running()) ExpectCleanStop();
  }
  std::unique_ptr<RingdProcess> ringd_;
};

}  // namespace pinring::testing
