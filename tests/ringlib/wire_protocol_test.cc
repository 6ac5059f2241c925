// Framing of control messages: every malformed datagram is refused with a message naming why.
#include "wire/wire_protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace pinring::wire {
namespace {

using ::testing::HasSubstr;

template <typename Body>
std::vector<std::byte> Bytes(const Message<Body>& m) {
  const auto* p = reinterpret_cast<const std::byte*>(&m);
  return std::vector<std::byte>(p, p + sizeof m);
}

TEST(WireProtocol, AcceptsWellFormedHello) {
  Hello h{};
  h.min_version = h.max_version = kVersion;
  SetText(h.name, "test");
  auto bytes = Bytes(MakeMessage(MessageType::kHello, 7, h));
  auto parsed = ParseHeader(bytes, 0);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->seq, 7u);
  EXPECT_STREQ(BodyOf<Hello>(bytes).name, "test");
}

TEST(WireProtocol, RejectsTruncatedHeader) {
  std::vector<std::byte> bytes(10);
  EXPECT_THAT(ParseHeader(bytes, 0).status().message(), HasSubstr("truncated"));
}

TEST(WireProtocol, RejectsTruncatedBody) {
  auto bytes = Bytes(MakeMessage(MessageType::kCreateQueue, 1, CreateQueue{}));
  bytes.resize(bytes.size() - 4);
  MessageHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  h.length = static_cast<std::uint32_t>(bytes.size());
  std::memcpy(bytes.data(), &h, sizeof h);
  EXPECT_THAT(ParseHeader(bytes, 3).status().message(), HasSubstr("body"));
}

TEST(WireProtocol, RejectsOversized) {
  std::vector<std::byte> bytes(kMaxMessageSize + 1);
  EXPECT_THAT(ParseHeader(bytes, 0).status().message(), HasSubstr("oversized"));
}

TEST(WireProtocol, RejectsLengthMismatch) {
  auto bytes = Bytes(MakeMessage(MessageType::kDestroyQueue, 1, DestroyQueue{}));
  bytes.push_back(std::byte{0});
  EXPECT_THAT(ParseHeader(bytes, 0).status().message(), HasSubstr("length field"));
}

TEST(WireProtocol, RejectsBadMagicVersionAndType) {
  auto good = Bytes(MakeMessage(MessageType::kDestroyQueue, 1, DestroyQueue{}));
  auto bad_magic = good;
  bad_magic[0] = std::byte{0};
  EXPECT_THAT(ParseHeader(bad_magic, 0).status().message(), HasSubstr("magic"));
  auto bad_version = good;
  bad_version[4] = std::byte{9};
  EXPECT_THAT(ParseHeader(bad_version, 0).status().message(), HasSubstr("version"));
  auto bad_type = good;
  bad_type[6] = std::byte{99};
  EXPECT_THAT(ParseHeader(bad_type, 0).status().message(), HasSubstr("unknown message type"));
}

TEST(WireProtocol, RejectsWrongFdCount) {
  auto bytes = Bytes(MakeMessage(MessageType::kRegisterRegion, 1, RegisterRegion{}));
  EXPECT_THAT(ParseHeader(bytes, 0).status().message(), HasSubstr("fds"));
  EXPECT_THAT(ParseHeader(bytes, 2).status().message(), HasSubstr("fds"));
  EXPECT_TRUE(ParseHeader(bytes, 1).ok());
}

TEST(WireProtocol, ReplyStatusRoundTripsAndBoundsUntrustedText) {
  auto s = FromReplyStatus(ToReplyStatus(absl::ResourceExhaustedError("RLIMIT_MEMLOCK too low")));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "RLIMIT_MEMLOCK too low");
  ReplyStatus hostile;
  std::memset(&hostile, 'x', sizeof hostile);  // no NUL anywhere, absurd code
  auto h = FromReplyStatus(hostile);
  EXPECT_EQ(h.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(h.message().size(), kErrorTextSize);
}

TEST(WireProtocol, IsTerminatedChecksBounds) {
  char s[4] = {'a', 'b', 'c', 'd'};
  EXPECT_FALSE(IsTerminated(s));
  s[3] = '\0';
  EXPECT_TRUE(IsTerminated(s));
}

}  // namespace
}  // namespace pinring::wire
