// The hugetlb row of the forkcheck matrix, which needs reserved huge pages (vm.nr_hugepages > 0).
// Neither the host nor the stock guest reserves any, so the full-matrix runs skip those cells.
// This test reserves them, but only inside a throwaway pinring-rxe guest (PINRING_IN_GUEST=1, where
// it runs as root on a kernel nobody else uses): on any other machine it skips and changes nothing.
// Then it runs the hugetlb scenario on both backends and requires every cell to have run, except
// the one the io_uring backend cannot express (readonly: io_uring always pins for write).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "require_device.h"

namespace {

constexpr int kHugePages = 64;  // 128 MiB of 2 MiB pages; the scenario maps 4 MiB per cell

long ReadLong(const char* path) {
  std::ifstream in(path);
  long v = -1;
  in >> v;
  return in ? v : -1;
}

TEST(ForkcheckHugetlb, GuestReservesHugePagesAndRunsTheHugetlbCells) {
  // Only in the guest: the host's vm.nr_hugepages belongs to its administrator.
  const char* in_guest = std::getenv("PINRING_IN_GUEST");
  if (in_guest == nullptr || std::string(in_guest) != "1") {
    GTEST_SKIP() << "reserves huge pages (vm.nr_hugepages): runs only inside a pinring-rxe guest "
                    "(PINRING_IN_GUEST=1); the host is left untouched";
  }
  PINRING_REQUIRE_RDMA_DEVICE();
  if (ReadLong("/proc/sys/vm/nr_hugepages") < kHugePages) {
    std::ofstream out("/proc/sys/vm/nr_hugepages");
    out << kHugePages << "\n";
    out.close();
    ASSERT_TRUE(out) << "cannot write /proc/sys/vm/nr_hugepages (the guest runs CMD as root)";
  }
  const long reserved = ReadLong("/proc/sys/vm/nr_hugepages");
  // The kernel may reserve fewer than asked when memory is fragmented; 4 cells at a time never
  // hold more than a few 4 MiB regions, so 8 pages are plenty.
  ASSERT_GE(reserved, 8) << "asked for " << kHugePages << " huge pages, the kernel reserved "
                         << reserved;

  const std::string json = std::string(::testing::TempDir()) + "/forkcheck-hugetlb-" +
                           std::to_string(getpid()) + ".json";
  std::string exe = PINRING_FORKCHECK_EXE;
  std::vector<std::string> args = {exe,
                                   "--backends=verbs,iouring",
                                   "--require_backend=verbs",
                                   "--scenarios=hugetlb",
                                   "--nocosts",
                                   "--label=guest-hugetlb",
                                   "--json=" + json};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  int ws = 0;
  waitpid(pid, &ws, 0);
  ASSERT_TRUE(WIFEXITED(ws)) << "killed by signal " << WTERMSIG(ws);
  ASSERT_EQ(WEXITSTATUS(ws), 0);

  std::ifstream in(json);
  nlohmann::json j = nlohmann::json::parse(in);
  int ran = 0;
  for (const auto& c : j.at("cells")) {
    ASSERT_EQ(c.at("scenario"), "hugetlb") << c.dump();
    const bool skipped = c.at("outcome") == "skipped";
    const bool iouring_readonly = c.at("backend") == "iouring" && c.at("mode") == "readonly";
    if (iouring_readonly) {
      EXPECT_TRUE(skipped) << c.dump();
      EXPECT_EQ(c.at("blame"), "backend") << c.dump();
      continue;
    }
    // odp: io_uring cannot express it at all, and verbs only where the device's ODP works
    // (forkcheck_odp_test covers that); skipped here only with the backend's reason.
    if (c.at("mode") == "odp" && skipped) {
      EXPECT_EQ(c.at("blame"), "backend") << c.dump();
      continue;
    }
    EXPECT_FALSE(skipped) << "hugetlb cell still skipped with " << reserved
                          << " huge pages reserved: " << c.dump();
    EXPECT_FALSE(c.at("mismatch").get<bool>()) << c.dump();
    if (!skipped) ++ran;
  }
  // 2 backends x the 5 pinning modes, minus iouring/readonly (odp runs where the device has it).
  EXPECT_GE(ran, 9) << j.at("cells").dump(1);
  EXPECT_EQ(j.at("summary").at("unknown"), 0);
  EXPECT_EQ(j.at("summary").at("mismatches"), 0);
  std::printf("hugetlb cells with %ld huge pages reserved:\n", reserved);
  for (const auto& c : j.at("cells")) {
    std::printf("  %s/%s: %s\n", c.at("backend").get<std::string>().c_str(),
                c.at("mode").get<std::string>().c_str(),
                c.at("outcome").get<std::string>().c_str());
  }
  std::remove(json.c_str());
}

}  // namespace
