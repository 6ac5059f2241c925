// The descriptor builders: the C++ ones (pinring/descriptors.h) and the C API's (pinring/pinring.h)
// produce the same 64 bytes for the same arguments, with every reserved field zero.
#include "pinring/descriptors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "pinring/grant_token.h"
#include "pinring/pinring.h"
#include "pinring/rdma_queue.h"

namespace pinring {
namespace {

bool SameBytes(const Descriptor& a, const pinring_descriptor& b) {
  static_assert(sizeof a == sizeof b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}

TEST(Descriptors, CAndCppBuildersAgree) {
  EXPECT_TRUE(SameBytes(MakeNop(7), pinring_make_nop(7)));
  EXPECT_TRUE(SameBytes(MakeCopy(1, 2, 3, 4, 5, 6), pinring_make_copy(1, 2, 3, 4, 5, 6)));
  EXPECT_TRUE(SameBytes(MakeFill(1, 8, 16, 0xa5, 9), pinring_make_fill(1, 8, 16, 0xa5, 9)));
  EXPECT_TRUE(SameBytes(MakeChecksum(2, 3, 4, 5), pinring_make_checksum(2, 3, 4, 5)));
  EXPECT_TRUE(SameBytes(MakeFillPattern64(1, 8, 16, 0x1122334455667788ull, 3),
                        pinring_make_descriptor(PINRING_OP_FILL, PINRING_DESC_FILL_PATTERN64, 0, 0,
                                                1, 8, 16, 0x1122334455667788ull, 3)));
}

TEST(Descriptors, FieldsLandWhereRingdReadsThem) {
  const Descriptor c = MakeCopy(11, 22, 33, 44, 55, 66);
  EXPECT_EQ(c.opcode, static_cast<std::uint8_t>(Opcode::kCopy));
  EXPECT_EQ(c.src_region, 11u);
  EXPECT_EQ(c.src_offset, 22u);
  EXPECT_EQ(c.dst_region, 33u);
  EXPECT_EQ(c.dst_offset, 44u);
  EXPECT_EQ(c.length, 55u);
  EXPECT_EQ(c.user_data, 66u);
  EXPECT_EQ(c.reserved0 | c.reserved1 | c.reserved2 | c.flags | c.value, 0u);
  const Descriptor f = MakeFillPattern64(5, 8, 64, 0xabcdef, 1);
  EXPECT_EQ(f.flags, kDescFlagFillPattern64);
  EXPECT_EQ(f.value, 0xabcdefu);
  rdma::GrantToken t;
  t.node = 0x0a0000014867;
  t.handle = 9;
  t.key = 0x1234;
  const Descriptor w = RemoteWriteDescriptor(t, 100, 2, 200, 300, 4);
  EXPECT_EQ(w.opcode, kOpRemoteWrite);
  EXPECT_EQ(w.dst_region, 9u);
  EXPECT_EQ(w.dst_offset, 100u);
  EXPECT_EQ(w.src_region, 2u);
  EXPECT_EQ(w.src_offset, 200u);
  EXPECT_EQ(w.value, 0x1234u);
  EXPECT_EQ(w.reserved2, t.node);
  const Descriptor r = RemoteReadDescriptor(t, 100, 2, 200, 300, 4);
  EXPECT_EQ(r.opcode, kOpRemoteRead);
  EXPECT_EQ(r.src_region, 9u);
  EXPECT_EQ(r.dst_region, 2u);
  EXPECT_EQ(r.reserved0 | r.reserved1, 0u);
}

}  // namespace
}  // namespace pinring
