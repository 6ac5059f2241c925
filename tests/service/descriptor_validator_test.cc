// Every CompletionStatus the validator produces, and the order of checks.
#include "service/descriptor_validator.h"
#include "pinring/descriptors.h"
#include "service/region_table.h"

#include <gtest/gtest.h>

#include <limits>

namespace pinring::ringd {
namespace {

class ValidatorTest : public ::testing::Test {
 protected:
  ValidatorTest() {
    rw_.handle = 1;
    rw_.size = 4096;
    ro_.handle = 2;
    ro_.size = 4096;
    ro_.device_writable = false;
    ro_.fork_mode = ForkMode::kReadOnly;
  }
  ValidatedOp V(const Descriptor& d) {
    return ValidateShmDescriptor(d, [this](std::uint32_t h) -> const Region* {
      return h == 1 ? &rw_ : h == 2 ? &ro_ : nullptr;
    });
  }
  static Descriptor Copy(std::uint32_t s, std::uint64_t so, std::uint32_t dr, std::uint64_t dof,
                         std::uint64_t len) {
    return MakeCopy(s, so, dr, dof, len);
  }
  Region rw_, ro_;
};

TEST_F(ValidatorTest, OkForEveryOpcode) {
  Descriptor nop{};
  EXPECT_EQ(V(nop).status, CompletionStatus::kOk);
  ValidatedOp c = V(Copy(1, 0, 1, 2048, 2048));
  EXPECT_EQ(c.status, CompletionStatus::kOk);
  EXPECT_EQ(c.src, &rw_);
  EXPECT_EQ(c.dst, &rw_);
  Descriptor ck = Copy(2, 0, 0, 0, 4096);
  ck.opcode = static_cast<std::uint8_t>(Opcode::kChecksum);
  EXPECT_EQ(V(ck).status, CompletionStatus::kOk) << "checksum reads a read-only region";
  Descriptor f = Copy(0, 0, 1, 8, 16);
  f.opcode = static_cast<std::uint8_t>(Opcode::kFill);
  f.flags = kDescFlagFillPattern64 | kDescFlagFence;
  EXPECT_EQ(V(f).status, CompletionStatus::kOk);
  EXPECT_EQ(V(Copy(2, 0, 1, 0, 4096)).status, CompletionStatus::kOk) << "read-only source is fine";
  EXPECT_EQ(V(Copy(1, 4096, 1, 0, 0)).status, CompletionStatus::kOk) << "empty range at the end";
}

TEST_F(ValidatorTest, BadOpcode) {
  Descriptor d{};
  for (int op : {4, 5, 0x7f, 0xff}) {
    d.opcode = static_cast<std::uint8_t>(op);
    EXPECT_EQ(V(d).status, CompletionStatus::kBadOpcode) << op;
  }
}

TEST_F(ValidatorTest, BadReservedEachField) {
  Descriptor d = Copy(1, 0, 1, 100, 10);
  d.reserved0 = 1;
  EXPECT_EQ(V(d).status, CompletionStatus::kBadReserved);
  d = Copy(1, 0, 1, 100, 10);
  d.reserved1 = 1;
  EXPECT_EQ(V(d).status, CompletionStatus::kBadReserved);
  d = Copy(1, 0, 1, 100, 10);
  d.reserved2 = 1ull << 63;
  EXPECT_EQ(V(d).status, CompletionStatus::kBadReserved);
}

TEST_F(ValidatorTest, BadFlags) {
  Descriptor d = Copy(1, 0, 1, 100, 10);
  d.flags = 1u << 7;
  EXPECT_EQ(V(d).status, CompletionStatus::kBadFlags) << "unknown bit";
  d.flags = kDescFlagFillPattern64;
  EXPECT_EQ(V(d).status, CompletionStatus::kBadFlags) << "pattern flag on COPY";
  d.flags = kDescFlagFence;
  EXPECT_EQ(V(d).status, CompletionStatus::kOk);
}

TEST_F(ValidatorTest, UnknownRegion) {
  EXPECT_EQ(V(Copy(9, 0, 1, 0, 1)).status, CompletionStatus::kUnknownRegion);
  EXPECT_EQ(V(Copy(1, 0, 0, 0, 1)).status, CompletionStatus::kUnknownRegion);
  EXPECT_EQ(V(Copy(0xffffffff, 0, 1, 0, 1)).status, CompletionStatus::kUnknownRegion);
}

TEST_F(ValidatorTest, OutOfBoundsIncludingOverflow) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(V(Copy(1, 4000, 1, 0, 97)).status, CompletionStatus::kOutOfBounds);
  EXPECT_EQ(V(Copy(1, 0, 1, 4001, 96)).status, CompletionStatus::kOutOfBounds);
  EXPECT_EQ(V(Copy(1, kMax, 1, 0, 2)).status, CompletionStatus::kOutOfBounds) << "offset wraps";
  EXPECT_EQ(V(Copy(1, 8, 1, 0, kMax - 4)).status, CompletionStatus::kOutOfBounds) << "length wraps";
  EXPECT_EQ(V(Copy(1, 4097, 1, 0, 0)).status, CompletionStatus::kOutOfBounds);
}

TEST_F(ValidatorTest, Misaligned) {
  Descriptor f = Copy(0, 0, 1, 4, 16);
  f.opcode = static_cast<std::uint8_t>(Opcode::kFill);
  f.flags = kDescFlagFillPattern64;
  EXPECT_EQ(V(f).status, CompletionStatus::kMisaligned);
  f.dst_offset = 8;
  f.length = 12;
  EXPECT_EQ(V(f).status, CompletionStatus::kMisaligned);
  f.flags = 0;  // byte fill: any alignment
  EXPECT_EQ(V(f).status, CompletionStatus::kOk);
}

TEST_F(ValidatorTest, ReadOnlyDestination) {
  EXPECT_EQ(V(Copy(1, 0, 2, 0, 16)).status, CompletionStatus::kReadOnlyRegion);
  Descriptor f = Copy(0, 0, 2, 0, 16);
  f.opcode = static_cast<std::uint8_t>(Opcode::kFill);
  EXPECT_EQ(V(f).status, CompletionStatus::kReadOnlyRegion);
}

TEST_F(ValidatorTest, OverlapInSameRegion) {
  EXPECT_EQ(V(Copy(1, 0, 1, 10, 20)).status, CompletionStatus::kOverlap);
  EXPECT_EQ(V(Copy(1, 10, 1, 0, 20)).status, CompletionStatus::kOverlap);
  EXPECT_EQ(V(Copy(1, 5, 1, 5, 1)).status, CompletionStatus::kOverlap);
  EXPECT_EQ(V(Copy(1, 0, 1, 20, 20)).status, CompletionStatus::kOk) << "adjacent";
}

// Two handles of one memfd (the same BackingId) alias: overlap is judged on the memory
// (issue 11, item 8). Regions of different memfds never overlap.
TEST(ValidatorAliasTest, OverlapThroughTwoHandlesOfOneMemfd) {
  Region a, b, other;
  a.handle = 1;
  b.handle = 2;
  other.handle = 3;
  a.size = b.size = other.size = 4096;
  a.mapping = ClientMapping(Mapping(), BackingId{7, 42}, 4096, FaultGuard());
  b.mapping = ClientMapping(Mapping(), BackingId{7, 42}, 4096, FaultGuard());
  other.mapping = ClientMapping(Mapping(), BackingId{7, 43}, 4096, FaultGuard());
  auto v = [&](const Descriptor& d) {
    return ValidateShmDescriptor(d, [&](std::uint32_t h) -> const Region* {
      return h == 1 ? &a : h == 2 ? &b : h == 3 ? &other : nullptr;
    });
  };
  Descriptor d{};
  d.opcode = static_cast<std::uint8_t>(Opcode::kCopy);
  d.src_region = 1;
  d.dst_region = 2;
  d.src_offset = 0;
  d.dst_offset = 128;
  d.length = 1024;
  EXPECT_EQ(v(d).status, CompletionStatus::kOverlap);
  d.dst_offset = 1024;
  EXPECT_EQ(v(d).status, CompletionStatus::kOk) << "adjacent file ranges";
  d.dst_region = 3;
  d.dst_offset = 128;
  EXPECT_EQ(v(d).status, CompletionStatus::kOk) << "another memfd";
}

TEST_F(ValidatorTest, FirstFailureWins) {
  Descriptor d = Copy(9, 0, 9, 0, 1);
  d.reserved0 = 1;
  d.flags = 0x80;
  EXPECT_EQ(V(d).status, CompletionStatus::kBadReserved);
  d.opcode = 77;
  EXPECT_EQ(V(d).status, CompletionStatus::kBadOpcode);
}

TEST_F(ValidatorTest, NopIgnoresRegionFields) {
  Descriptor d{};
  d.src_region = 1234;
  d.length = ~0ull;
  EXPECT_EQ(V(d).status, CompletionStatus::kOk);
}

// The NOP fast path (IsValidNop, taken by QueueServer before the full validator) must accept
// exactly the NOPs the validator accepts: every field and flag bit set alone, on a NOP.
TEST_F(ValidatorTest, NopFastPathAgreesWithTheValidator) {
  int accepted = 0, rejected = 0;
  for (int byte = 0; byte < 64; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      Descriptor d{};
      reinterpret_cast<unsigned char*>(&d)[byte] = static_cast<unsigned char>(1u << bit);
      const bool full = V(d).status == CompletionStatus::kOk && d.opcode == 0;
      EXPECT_EQ(IsValidNop(d), full) << "byte " << byte << " bit " << bit;
      (full ? accepted : rejected)++;
    }
  }
  // user_data, the region and range fields, value, and the fence flag leave a NOP valid; the
  // opcode, other flags and the reserved fields do not.
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
  Descriptor fenced = MakeNop(1);
  fenced.flags = kDescFlagFence;
  EXPECT_TRUE(IsValidNop(fenced));
  Descriptor pattern = MakeNop(1);
  pattern.flags = kDescFlagFillPattern64;
  EXPECT_FALSE(IsValidNop(pattern));
  EXPECT_EQ(V(pattern).status, CompletionStatus::kBadFlags);
}

}  // namespace
}  // namespace pinring::ringd
