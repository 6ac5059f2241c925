// The full forkcheck matrix with the verbs backend (ibv_reg_mr + RDMA READ over loopback RC).
// Needs an RDMA device: run through deploy/softroce/pinring-rxe (rdma label). Sizes are capped at
// 64 MiB: the guest runs under TCG emulation.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "require_device.h"

namespace {

TEST(ForkcheckVerbs, FullMatrixNoUnknownNoCrash) {
  PINRING_REQUIRE_RDMA_DEVICE();
  const std::string json =
      std::string(::testing::TempDir()) + "/forkcheck-verbs-" + std::to_string(getpid()) + ".json";
  std::string exe = PINRING_FORKCHECK_EXE;
  std::vector<std::string> args = {
      exe,        "--backends=verbs", "--require_backend=verbs", "--max_size_mib=16",
      "--reps=3", "--json=" + json};
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
  const std::set<std::string> valid = {"coherent",     "stale",      "leak",
                                       "child-signal", "pin-failed", "device-fault", "refused",
                                       "skipped"};
  int ran = 0;
  for (const auto& c : j.at("cells")) {
    EXPECT_TRUE(valid.count(c.at("outcome").get<std::string>())) << c.dump();
    if (c.at("outcome") != "skipped") {
      ++ran;
    }
    if (c.at("outcome") != "coherent") {
      EXPECT_FALSE(c.at("explanation").get<std::string>().empty()) << c.dump();
    }
  }
  EXPECT_GT(ran, 0);
  EXPECT_EQ(j.at("summary").at("unknown"), 0);
  std::remove(json.c_str());
}

}  // namespace
