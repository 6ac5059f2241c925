// The rdma transport's validator on ringd's table of grants (no device: RegionLookup is ringd's own
// interface, implemented here by a table). Overlap is judged on the client's memory, not on the
// handles: two grants may cover the same bytes (issue 11, item 8).
#include "service/rdma/rdma_executor.h"

#include <gtest/gtest.h>

#include "absl/container/flat_hash_map.h"
#include "pinring/descriptors.h"

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

}  // namespace
}  // namespace pinring::ringd
