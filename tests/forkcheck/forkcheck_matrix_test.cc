// Runs the pinring-forkcheck executable end to end and checks its JSON: it must not crash, no cell
// may be "unknown", every cell names an outcome and every non-coherent cell an explanation.
//   unit label: the iouring backend matrix on the host (--quick).
//   rdma label: the full matrix with the verbs backend (needs a device: run in the soft-RoCE
//   guest).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "require_device.h"

namespace {

// Runs the tool with args; returns its exit status (-signal if it died from a signal).
int RunTool(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string exe = PINRING_FORKCHECK_EXE;
  argv.push_back(exe.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  int ws = 0;
  waitpid(pid, &ws, 0);
  return WIFSIGNALED(ws) ? -WTERMSIG(ws) : WEXITSTATUS(ws);
}

std::string TempJson(const char* tag) {
  return std::string(::testing::TempDir()) + "/forkcheck-" + tag + "-" + std::to_string(getpid()) +
         ".json";
}

void CheckCells(const nlohmann::json& j, const std::string& backend, bool expect_run) {
  const std::set<std::string> valid = {"coherent",     "stale",      "leak",
                                       "child-signal", "pin-failed", "device-fault", "refused",
                                       "skipped"};
  int ran = 0;
  for (const auto& c : j.at("cells")) {
    const std::string where = c.at("backend").get<std::string>() + "/" +
                              c.at("scenario").get<std::string>() + "/" +
                              c.at("mode").get<std::string>();
    const std::string outcome = c.at("outcome");
    EXPECT_TRUE(valid.count(outcome)) << where << ": " << outcome;
    if (outcome != "coherent") {
      EXPECT_FALSE(c.at("explanation").get<std::string>().empty()) << where;
    }
    if (c.at("backend") == backend && outcome != "skipped") {
      ++ran;
    }
  }
  EXPECT_EQ(j.at("summary").at("unknown"), 0);
  if (expect_run) {
    EXPECT_GT(ran, 0) << "backend " << backend << " ran no cell";
  }
}

TEST(ForkcheckMatrix, IouringQuickOnHost) {
  const std::string json = TempJson("iouring");
  const int rc = RunTool({"--quick", "--backends=iouring", "--json=" + json});
  ASSERT_EQ(rc, 0) << "pinring-forkcheck exit status (negative = killed by that signal)";
  std::ifstream in(json);
  nlohmann::json j = nlohmann::json::parse(in);
  CheckCells(j, "iouring", /*expect_run=*/true);
  // The core promises on this backend: kernel mode keeps the child's writes away from the device;
  // dontfork kills a touching child; shared leaks by design.
  for (const auto& c : j.at("cells")) {
    if (c.at("scenario") == "child-write" && c.at("mode") == "dontfork") {
      EXPECT_EQ(c.at("outcome"), "child-signal");
    }
    if (c.at("scenario") == "child-write" && c.at("mode") == "shared") {
      EXPECT_EQ(c.at("outcome"), "leak");
    }
  }
  ASSERT_FALSE(j.at("costs").empty());
  std::remove(json.c_str());
}

TEST(ForkcheckMatrix, HelpAndBadArguments) {
  EXPECT_EQ(RunTool({"--backends=nosuch", "--nocosts"}), 2);
  EXPECT_EQ(RunTool({"--modes=nosuch", "--nocosts"}), 2);
}

TEST(ForkcheckMatrix, RequireBackendSkipRule) {
  // Without a device the verbs requirement is a skip (77), unless the harness demands a device.
  if (!pinring::testing::FirstRdmaDevice().empty()) GTEST_SKIP() << "a device exists here";
  const char* req = std::getenv("PINRING_REQUIRE_DEVICE");
  const int rc = RunTool({"--backends=verbs", "--require_backend=verbs", "--nocosts"});
  EXPECT_EQ(rc, (req != nullptr && std::string(req) == "1") ? 1 : 77);
}

}  // namespace
