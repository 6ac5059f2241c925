// The C API (pinring/pinring.h) against a real ringd: the happy path, error codes with
// messages that name the fix, and a forked child refused with FAILED_PRECONDITION.
#include "pinring/pinring.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "common/ringd_process.h"

namespace {

using ::pinring::testing::RingdProcess;
using ::testing::HasSubstr;

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = RingdProcess::Start({"--backend=cpu"});
    ASSERT_TRUE(p.ok()) << p.status();
    ringd_ = *std::move(p);
    ASSERT_EQ(pinring_connect(ringd_->socket_path().c_str(), &client_), PINRING_OK)
        << pinring_last_error();
  }
  void TearDown() override { pinring_client_close(client_); }
  std::unique_ptr<RingdProcess> ringd_;
  pinring_client* client_ = nullptr;
};

TEST_F(CApiTest, SubmitWaitReapVerifiesData) {
  EXPECT_STREQ(pinring_client_backend(client_), "cpu");
  pinring_region* region = nullptr;
  ASSERT_EQ(pinring_region_create(client_, 4096, 0, PINRING_FORK_DONTFORK, &region), PINRING_OK)
      << pinring_last_error();
  pinring_queue_options o;
  pinring_queue_options_init(&o);
  o.sq_entries = 8;
  o.completion_wait = PINRING_WAIT_SPIN;
  pinring_queue* q = nullptr;
  ASSERT_EQ(pinring_queue_create(client_, &o, &q), PINRING_OK) << pinring_last_error();

  const uint32_t h = pinring_region_handle(region);
  pinring_descriptor d[4] = {
      pinring_make_nop(1), pinring_make_fill(h, 0, 4096, 0x11, 2),
      pinring_make_checksum(h, 0, 4096, 3), pinring_make_fill(h + 99, 0, 8, 0, 4)};
  ASSERT_EQ(pinring_submit(q, d, 4), 4) << pinring_last_error();
  ASSERT_GE(pinring_wait(q, 4, 5000), 4) << pinring_last_error();
  pinring_completion c[8];
  ASSERT_EQ(pinring_reap(q, c, 8), 4);
  EXPECT_EQ(c[0].status, PINRING_CS_OK);
  EXPECT_EQ(c[1].status, PINRING_CS_OK);
  EXPECT_EQ(c[1].result, 4096u);
  EXPECT_EQ(c[2].status, PINRING_CS_OK);
  EXPECT_EQ(c[2].result, pinring_fnv1a64(pinring_region_data(region), 4096));
  EXPECT_EQ(c[3].status, PINRING_CS_UNKNOWN_REGION);
  EXPECT_STREQ(pinring_completion_status_name(c[3].status), "unknown-region");
  EXPECT_EQ(static_cast<unsigned char*>(pinring_region_data(region))[100], 0x11);
  EXPECT_EQ(pinring_reap(q, c, 8), 0);

  // Close in "wrong" order: the client first, then its queue and region.
  pinring_client_close(client_);
  client_ = nullptr;
  pinring_queue_close(q);
  pinring_region_close(region);
}

TEST_F(CApiTest, ErrorsHaveCodesAndMessages) {
  pinring_client* c = nullptr;
  EXPECT_EQ(pinring_connect("/tmp/pinring-nowhere/ringd.sock", &c), PINRING_ERR_UNAVAILABLE);
  EXPECT_EQ(c, nullptr);
  EXPECT_THAT(pinring_last_error(), HasSubstr("ringd is not running at"));
  pinring_queue_options o;
  pinring_queue_options_init(&o);
  o.sq_entries = 5;
  pinring_queue* q = nullptr;
  EXPECT_EQ(pinring_queue_create(client_, &o, &q), PINRING_ERR_INVALID_ARGUMENT);
  EXPECT_THAT(pinring_last_error(), HasSubstr("powers of two"));
  pinring_queue_options_init(&o);
  ASSERT_EQ(pinring_queue_create(client_, &o, &q), PINRING_OK);
  EXPECT_EQ(pinring_wait(q, 1, 10), PINRING_ERR_FAILED_PRECONDITION);  // nothing in flight
  pinring_queue_close(q);
  pinring_region* r = nullptr;
  EXPECT_EQ(pinring_region_create(client_, 4096, 0, 42, &r), PINRING_ERR_INVALID_ARGUMENT);
}

TEST_F(CApiTest, RingdStoppingIsUnavailable) {
  pinring_queue* q = nullptr;
  ASSERT_EQ(pinring_queue_create(client_, nullptr, &q), PINRING_OK) << pinring_last_error();
  ASSERT_TRUE(ringd_->Stop(SIGTERM).ok());
  pinring_descriptor d = pinring_make_nop(1);
  int rc = pinring_submit(q, &d, 1);
  if (rc == 1) rc = pinring_wait(q, 1, 5000);
  if (rc >= 0) {
    // ringd answered the NOP with SHUTTING_DOWN before it left: the next call must fail.
    pinring_completion c;
    (void)pinring_reap(q, &c, 1);
    rc = pinring_submit(q, &d, 1);
  }
  EXPECT_EQ(rc, PINRING_ERR_UNAVAILABLE);
  EXPECT_THAT(pinring_last_error(), HasSubstr("ringd stopped"));
  pinring_queue_close(q);
}

TEST_F(CApiTest, ForkedChildIsRefused) {
  pinring_queue* q = nullptr;
  ASSERT_EQ(pinring_queue_create(client_, nullptr, &q), PINRING_OK) << pinring_last_error();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    pinring_descriptor d = pinring_make_nop(1);
    if (pinring_submit(q, &d, 1) != PINRING_ERR_FAILED_PRECONDITION) _exit(1);
    if (std::strstr(pinring_last_error(), "fork") == nullptr) _exit(2);
    pinring_queue* q2 = nullptr;
    if (pinring_queue_create(client_, nullptr, &q2) != PINRING_ERR_FAILED_PRECONDITION) _exit(3);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << RingdProcess::DescribeWaitStatus(status);
  pinring_descriptor d = pinring_make_nop(5);
  ASSERT_EQ(pinring_submit(q, &d, 1), 1) << pinring_last_error();
  ASSERT_GE(pinring_wait(q, 1, 5000), 1) << pinring_last_error();
  pinring_queue_close(q);
}

}  // namespace
