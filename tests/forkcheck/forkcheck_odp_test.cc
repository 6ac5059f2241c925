// pinring-forkcheck's matrix in fork mode odp, on a device with on-demand paging (label odp: a
// --kernel=7 guest, whose rxe has ODP for RC). Every cell must run (hugetlb aside, which needs
// reserved huge pages) and match what the mode promises (tools/forkcheck/verdict.cc, Expect).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "require_odp.h"

namespace {

int RunForkcheck(const std::vector<std::string>& args) {
  std::vector<std::string> a = args;
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  int ws = 0;
  waitpid(pid, &ws, 0);
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

TEST(ForkcheckOdp, EveryCellRunsAndKeepsTheModesPromise) {
  PINRING_REQUIRE_WORKING_ODP();
  const std::string json =
      std::string(::testing::TempDir()) + "/forkcheck-odp-" + std::to_string(getpid()) + ".json";
  ASSERT_EQ(RunForkcheck({PINRING_FORKCHECK_EXE, "--backends=verbs", "--require_backend=verbs",
                          "--modes=odp", "--nocosts", "--quick", "--json=" + json}),
            0);
  std::ifstream in(json);
  nlohmann::json j = nlohmann::json::parse(in);
  int ran = 0;
  for (const auto& c : j.at("cells")) {
    SCOPED_TRACE(c.dump());
    ASSERT_EQ(c.at("mode"), "odp");
    const std::string outcome = c.at("outcome");
    if (c.at("scenario") == "hugetlb" && outcome == "skipped") continue;  // no huge pages here
    // A skipped odp cell means the device lacks ODP: in this label that is a failure.
    EXPECT_NE(outcome, "skipped") << "the odp label runs only where the device has ODP";
    EXPECT_FALSE(c.at("mismatch").get<bool>()) << "odp broke its promise";
    ++ran;
  }
  EXPECT_GE(ran, 9);
  // The cells where odp differs from every pinning mode, by name.
  for (const auto& c : j.at("cells")) {
    if (c.at("scenario") == "dontneed" || c.at("scenario") == "munmap-remap") {
      EXPECT_EQ(c.at("outcome"), "coherent") << c.dump();
    }
    if (c.at("scenario") == "mremap") {
      EXPECT_EQ(c.at("outcome"), "device-fault") << c.dump();
    }
  }
  std::remove(json.c_str());
}

}  // namespace
