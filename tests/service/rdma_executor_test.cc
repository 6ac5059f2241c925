// The rdma transport's validator on ringd's table of grants (no device: RegionLookup is ringd's own
// interface, implemented here by a table). Overlap is judged on the client's memory, not on the
// handles: two grants may cover the same bytes (issue 11, item 8).
#include "service/rdma/rdma_executor.h"

#include <map>
#include <random>

#include <gtest/gtest.h>

#include "absl/container/flat_hash_map.h"
#include "pinring/descriptors.h"
#include "service/descriptor_validator.h"
#include "service/region_table.h"

namespace pinring::ringd {
namespace {

class GrantTable final : public RegionLookup {
 public:
  const GrantedRegion* Lookup(std::uint32_t h) override {
    auto it = grants.find(h);
    return it == grants.end() ? nullptr : &it->second;
  }
  absl::flat_hash_map<std::uint32_t, GrantedRegion> grants;
};

// ringlib's public builder, in the argument order of these tests.
Descriptor Copy(std::uint32_t s, std::uint64_t so, std::uint32_t d, std::uint64_t dof,
                std::uint64_t len) {
  return MakeCopy(s, so, d, dof, len, /*user_data=*/0);
}

TEST(RdmaValidatorTest, OverlapThroughTwoGrantsOfTheSameMemory) {
  GrantTable t;
  t.grants[1] = {0x10000, 8192, 11, true};
  t.grants[2] = {0x11000, 8192, 12, true};  // covers the second half of grant 1
  t.grants[3] = {0x40000, 8192, 13, true};
  // Grant 1 [4096, 4096+1024) is grant 2 [0, 1024): the same bytes.
  EXPECT_EQ(ValidateRdmaDescriptor(Copy(1, 4096, 2, 512, 1024), t), CompletionStatus::kOverlap);
  EXPECT_EQ(ValidateRdmaDescriptor(Copy(1, 0, 2, 0, 1024), t), CompletionStatus::kOk);
  EXPECT_EQ(ValidateRdmaDescriptor(Copy(1, 0, 3, 0, 8192), t), CompletionStatus::kOk);
  EXPECT_EQ(ValidateRdmaDescriptor(Copy(1, 0, 1, 100, 200), t), CompletionStatus::kOverlap);
}

// One descriptor contract for both transports (issue 14, part 2): the same descriptors against
// the same regions get the same status from the shm transport's validator and the rdma one. The
// shm side: region 2 is a second handle of region 1's memfd, region 3 another memfd, read-only;
// the rdma side: grants at the same addresses (grant 2 covers grant 1's bytes, grant 3 apart).
TEST(RdmaValidatorTest, SameStatusesAsTheShmTransportForRandomDescriptors) {
  Region r1, r2, r3;
  r1.handle = 1;
  r2.handle = 2;
  r3.handle = 3;
  r1.size = r2.size = r3.size = 8192;
  r3.device_writable = false;
  r1.mapping = ClientMapping(Mapping(), BackingId{7, 42}, 4096, FaultGuard());
  r2.mapping = ClientMapping(Mapping(), BackingId{7, 42}, 4096, FaultGuard());
  r3.mapping = ClientMapping(Mapping(), BackingId{7, 43}, 4096, FaultGuard());
  auto shm = [&](std::uint32_t h) -> const Region* {
    return h == 1 ? &r1 : h == 2 ? &r2 : h == 3 ? &r3 : nullptr;
  };
  GrantTable rdma;
  rdma.grants[1] = {0x100000, 8192, 11, true};
  rdma.grants[2] = {0x100000, 8192, 12, true};  // the same bytes, as two handles of one memfd
  rdma.grants[3] = {0x200000, 8192, 13, false};
  std::mt19937_64 rng(14);
  const std::uint64_t offsets[] = {0, 8, 100, 4096, 8184, 8192, 8193, ~0ull - 7};
  const std::uint64_t lengths[] = {0, 8, 64, 1000, 4096, 8192, 8193, ~0ull};
  std::map<CompletionStatus, int> seen;
  for (int i = 0; i < 200000; ++i) {
    Descriptor d{};
    d.opcode = static_cast<std::uint8_t>(rng() % (kOpcodeCount + 1));  // and one bad opcode
    d.flags = static_cast<std::uint16_t>(rng() % 8 == 0 ? rng() : (rng() % 3 == 0 ? kDescFlagFillPattern64 : 0));
    d.src_region = static_cast<std::uint32_t>(rng() % 5);
    d.dst_region = static_cast<std::uint32_t>(rng() % 5);
    d.src_offset = offsets[rng() % 8];
    d.dst_offset = offsets[rng() % 8];
    d.length = lengths[rng() % 8];
    d.value = rng();
    if (rng() % 16 == 0) d.reserved0 = 1;
    if (d.opcode == kOpcodeCount) d.opcode = static_cast<std::uint8_t>(kRdmaOpcodeCount + rng() % 4);
    const CompletionStatus a = ValidateShmDescriptor(d, shm).status;
    const CompletionStatus b = ValidateRdmaDescriptor(d, rdma);
    ASSERT_EQ(a, b) << "opcode " << int(d.opcode) << " flags " << d.flags << " src "
                    << d.src_region << "+" << d.src_offset << " dst " << d.dst_region << "+"
                    << d.dst_offset << " len " << d.length;
    ++seen[a];
  }
  // The sample reached every status both can produce here.
  for (CompletionStatus s : {CompletionStatus::kOk, CompletionStatus::kBadOpcode,
                             CompletionStatus::kBadReserved, CompletionStatus::kBadFlags,
                             CompletionStatus::kUnknownRegion, CompletionStatus::kOutOfBounds,
                             CompletionStatus::kMisaligned, CompletionStatus::kReadOnlyRegion,
                             CompletionStatus::kOverlap}) {
    EXPECT_GT(seen[s], 0) << static_cast<int>(s);
  }
}

}  // namespace
}  // namespace pinring::ringd
