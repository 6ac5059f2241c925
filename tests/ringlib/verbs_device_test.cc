// VerbsDevice / MemoryRegion / LoopbackQp on a real (soft-RoCE) device: the NIC moves the bytes.
#include "verbs/verbs_device.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "common/require_device.h"

namespace pinring {
namespace {

constexpr int kFull = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;

TEST(VerbsDeviceTest, OpenPicksRoceV2GidAndRegisters) {
  PINRING_REQUIRE_RDMA_DEVICE();
  auto d = VerbsDevice::Open();
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE((*d)->name().empty());
  EXPECT_NE((*d)->pd(), nullptr);
  std::vector<std::byte> buf(8192);
  auto mr = (*d)->Register(buf.data(), buf.size(), kFull);
  ASSERT_TRUE(mr.ok()) << mr.status();
  EXPECT_EQ(mr->addr(), buf.data());
  EXPECT_EQ(mr->length(), buf.size());
  MemoryRegion moved = std::move(*mr);
  EXPECT_FALSE(mr->valid());
  EXPECT_TRUE(moved.valid());
  EXPECT_TRUE(moved.Deregister().ok());
  EXPECT_FALSE(VerbsDevice::Open("no-such-device").ok());
}

TEST(VerbsDeviceTest, LoopbackWriteAndReadMoveTheBytes) {
  PINRING_REQUIRE_RDMA_DEVICE();
  auto d = VerbsDevice::Open();
  ASSERT_TRUE(d.ok()) << d.status();
  auto qp = LoopbackQp::Create(**d, 8);
  ASSERT_TRUE(qp.ok()) << qp.status();
  std::vector<std::uint8_t> a(65536), b(65536, 0), c(65536, 0);
  std::iota(a.begin(), a.end(), 0);
  auto ma = (*d)->Register(a.data(), a.size(), IBV_ACCESS_REMOTE_READ);  // read-only pin
  auto mb = (*d)->Register(b.data(), b.size(), kFull);
  auto mc = (*d)->Register(c.data(), c.size(), kFull);
  ASSERT_TRUE(ma.ok() && mb.ok() && mc.ok());
  ASSERT_TRUE((*qp)->Write(*ma, 100, *mb, 200, 30000).ok());
  EXPECT_EQ(std::memcmp(a.data() + 100, b.data() + 200, 30000), 0);
  EXPECT_EQ(b[199], 0);
  ASSERT_TRUE((*qp)->Read(*ma, 0, *mc, 0, 65536).ok());
  EXPECT_EQ(a, c);
  EXPECT_FALSE((*qp)->Write(*ma, 65000, *mb, 0, 1000).ok()) << "outside the source MR";
  // Writing into a read-only MR fails on the device and breaks the QP.
  absl::Status s = (*qp)->Write(*mb, 0, *ma, 0, 16, absl::Seconds(20));
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE((*qp)->broken());
}

TEST(VerbsDeviceTest, ForkUnneededMatchesTheKernelsCopyOnFork) {
  PINRING_REQUIRE_RDMA_DEVICE();
  // Since 5.13 the kernel copies pinned anonymous pages at fork() and says so over RDMA netlink
  // (RDMA_NLDEV_SYS_ATTR_COPY_ON_FORK), which `rdma system show` prints. IbvForkUnneeded() (rdma-
  // core's ibv_is_fork_initialized() == IBV_FORK_UNNEEDED) must say the same thing.
  std::string out;
  if (FILE* p = popen("rdma system show 2>&1", "r")) {
    char buf[512];
    while (std::size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    pclose(p);
  }
  ASSERT_NE(out.find("copy-on-fork"), std::string::npos)
      << "`rdma system show` printed no copy-on-fork field (iproute2 too old?): " << out;
  const bool kernel_copies = out.find("copy-on-fork on") != std::string::npos;
  EXPECT_EQ(IbvForkUnneeded(), kernel_copies) << "rdma system show: " << out;
}

}  // namespace
}  // namespace pinring
