// Remote data movement of the rdma transport in one host: grants (ExportRegion / RevokeGrant),
// REMOTE_WRITE / REMOTE_READ between two clients of one ringd listener, and across two listeners
// (two "ringd"s in this process, different ports = different nodes) through the ringd-to-ringd
// peer link, including connection loss and reconnect. Data is verified by the clients.
#include <gtest/gtest.h>

#include <vector>

#include "rdma_test_util.h"

namespace pinring {
namespace {

using testing::QueueOptionsFor;
using testing::StartListener;

constexpr std::size_t kSize = 160 * 1024;  // more than two 64 KiB chunks

void Pattern(std::span<std::byte> b, std::uint32_t seed) {
  std::uint32_t x = seed | 1;
  for (std::byte& v : b) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v = static_cast<std::byte>(x);
  }
}

std::unique_ptr<RdmaQueue> ConnectOrDie(const RdmaQueueOptions& o) {
  auto q = RdmaQueue::Connect(o);
  EXPECT_TRUE(q.ok()) << q.status();
  return q.ok() ? std::move(*q) : nullptr;
}

CompletionStatus RunOne(RdmaQueue& q, const Descriptor& d, std::uint64_t* result = nullptr) {
  auto c = q.SubmitAndWait(d, absl::Seconds(60));
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return CompletionStatus::kDeviceError;
  EXPECT_EQ(c->user_data, d.user_data);
  if (result != nullptr) *result = c->result;
  return static_cast<CompletionStatus>(c->status);
}

// `writer` writes a pattern into `owner`'s exported region, `owner` checks its own bytes,
// `writer` reads them back into a second region and checks them too.
void WriteReadVerified(RdmaQueue& owner, RdmaQueue& writer, std::uint32_t seed) {
  auto target = owner.CreateRegion(kSize);
  ASSERT_TRUE(target.ok()) << target.status();
  auto token = owner.ExportRegion(*target);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(ParseGrantToken(FormatGrantToken(*token))->key, token->key);
  auto src = writer.CreateRegion(kSize);
  auto back = writer.CreateRegion(kSize);
  ASSERT_TRUE(src.ok() && back.ok());
  Pattern((*src)->bytes(), seed);
  std::uint64_t moved = 0;
  EXPECT_EQ(
      RunOne(writer, RemoteWriteDescriptor(*token, 0, (*src)->handle(), 0, kSize, 11), &moved),
      CompletionStatus::kOk);
  EXPECT_EQ(moved, kSize);
  EXPECT_EQ(std::memcmp((*target)->data(), (*src)->data(), kSize), 0) << "owner's view differs";
  EXPECT_EQ(
      RunOne(writer, RemoteReadDescriptor(*token, 4096, (*back)->handle(), 100, kSize - 8192, 12)),
      CompletionStatus::kOk);
  EXPECT_EQ(std::memcmp((*back)->data() + 100, (*src)->data() + 4096, kSize - 8192), 0);

  // Grant checks: wrong key, out of bounds, then revoked.
  rdma::GrantToken bad = *token;
  bad.key ^= 1;
  EXPECT_EQ(RunOne(writer, RemoteWriteDescriptor(bad, 0, (*src)->handle(), 0, 64, 13)),
            CompletionStatus::kUnknownRegion);
  EXPECT_EQ(RunOne(writer, RemoteWriteDescriptor(*token, kSize - 8, (*src)->handle(), 0, 64, 14)),
            CompletionStatus::kOutOfBounds);
  ASSERT_TRUE(owner.RevokeGrant(*token).ok());
  EXPECT_EQ(RunOne(writer, RemoteReadDescriptor(*token, 0, (*back)->handle(), 0, 64, 15)),
            CompletionStatus::kUnknownRegion);
  // Both connections are still healthy.
  EXPECT_TRUE(owner.error().ok() && writer.error().ok());
  ASSERT_TRUE(writer.DestroyRegion(*src).ok() && writer.DestroyRegion(*back).ok());
  ASSERT_TRUE(owner.DestroyRegion(*target).ok());
}

TEST(RdmaRemote, TwoClientsOfOneRingd) {
  PINRING_REQUIRE_RDMA_DEVICE();
  auto l = StartListener();
  ASSERT_NE(l, nullptr);
  auto owner = ConnectOrDie(QueueOptionsFor(*l));
  auto writer = ConnectOrDie(QueueOptionsFor(*l));
  ASSERT_TRUE(owner && writer);
  WriteReadVerified(*owner, *writer, 5);

  // Local-side validation, and the region's death revokes its grants.
  auto mine = writer->CreateRegion(4096);
  auto theirs = owner->CreateRegion(4096, ForkMode::kReadOnly);
  ASSERT_TRUE(mine.ok() && theirs.ok());
  auto ro = owner->ExportRegion(*theirs);
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_EQ(RunOne(*writer, RemoteReadDescriptor(*ro, 0, (*mine)->handle(), 0, 4096, 1)),
            CompletionStatus::kOk);
  EXPECT_EQ(RunOne(*writer, RemoteWriteDescriptor(*ro, 0, (*mine)->handle(), 0, 4096, 2)),
            CompletionStatus::kReadOnlyRegion);
  Descriptor flags = RemoteReadDescriptor(*ro, 0, (*mine)->handle(), 0, 8, 3);
  flags.flags = kDescFlagFence;
  EXPECT_EQ(RunOne(*writer, flags), CompletionStatus::kBadFlags);
  EXPECT_EQ(RunOne(*writer, RemoteReadDescriptor(*ro, 0, 999, 0, 8, 4)),
            CompletionStatus::kUnknownRegion);
  Descriptor opcode = RemoteReadDescriptor(*ro, 0, (*mine)->handle(), 0, 8, 5);
  opcode.opcode = kRdmaOpcodeCount;
  EXPECT_EQ(RunOne(*writer, opcode), CompletionStatus::kBadOpcode);
  Descriptor reserved = testing::Nop(6);
  reserved.reserved2 = 1;  // only REMOTE ops carry a node there
  EXPECT_EQ(RunOne(*writer, reserved), CompletionStatus::kBadReserved);
  ASSERT_TRUE(owner->DestroyRegion(*theirs).ok());
  EXPECT_EQ(RunOne(*writer, RemoteReadDescriptor(*ro, 0, (*mine)->handle(), 0, 8, 7)),
            CompletionStatus::kUnknownRegion);
  // Only the owner revokes.
  auto again = owner->CreateRegion(4096);
  ASSERT_TRUE(again.ok());
  auto t = owner->ExportRegion(*again);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(writer->RevokeGrant(*t).ok());
  // The owner's disconnect revokes too.
  owner.reset();
  EXPECT_EQ(RunOne(*writer, RemoteReadDescriptor(*t, 0, (*mine)->handle(), 0, 8, 8)),
            CompletionStatus::kUnknownRegion);
  EXPECT_TRUE(writer->error().ok());
}

TEST(RdmaRemote, AcrossTwoRingdsWithPeerLossAndReconnect) {
  PINRING_REQUIRE_RDMA_DEVICE();
  ringd::RdmaListenerOptions lo;
  lo.op_timeout = absl::Seconds(8);
  auto a = StartListener(lo);
  auto b = StartListener(lo);
  ASSERT_TRUE(a && b);
  auto writer = ConnectOrDie(QueueOptionsFor(*a));
  auto owner = ConnectOrDie(QueueOptionsFor(*b));
  ASSERT_TRUE(owner && writer);
  WriteReadVerified(*owner, *writer, 9);

  // ringd B goes away: the forwarded op fails, the client's connection to A lives.
  auto target = owner->CreateRegion(4096);
  ASSERT_TRUE(target.ok());
  auto token = owner->ExportRegion(*target);
  ASSERT_TRUE(token.ok());
  auto src = writer->CreateRegion(4096);
  ASSERT_TRUE(src.ok());
  std::memset((*src)->data(), 0x5a, 4096);
  const std::uint16_t b_port = b->port();
  owner.reset();
  b->Stop();
  b.reset();
  const CompletionStatus lost =
      RunOne(*writer, RemoteWriteDescriptor(*token, 0, (*src)->handle(), 0, 4096, 21));
  EXPECT_EQ(lost, CompletionStatus::kDeviceError);
  EXPECT_TRUE(writer->error().ok()) << writer->error();

  // A new ringd on the same node (address + port): the next op reconnects.
  ringd::RdmaListenerOptions lo2 = lo;
  lo2.port = b_port;
  lo2.log = [](const std::string& s) { std::fprintf(stderr, "[listener b2] %s\n", s.c_str()); };
  auto b2 = ringd::RdmaListener::Start(lo2);
  ASSERT_TRUE(b2.ok()) << b2.status();
  auto owner2 = ConnectOrDie(QueueOptionsFor(**b2));
  ASSERT_NE(owner2, nullptr);
  auto target2 = owner2->CreateRegion(4096);
  ASSERT_TRUE(target2.ok());
  auto token2 = owner2->ExportRegion(*target2);
  ASSERT_TRUE(token2.ok());
  EXPECT_EQ(token2->node, token->node);
  EXPECT_EQ(RunOne(*writer, RemoteWriteDescriptor(*token2, 0, (*src)->handle(), 0, 4096, 22)),
            CompletionStatus::kOk);
  EXPECT_EQ((*target2)->data()[4095], std::byte{0x5a});
}

}  // namespace
}  // namespace pinring
