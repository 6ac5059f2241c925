// Where a region's fork mode comes from when RegionOptions::fork_mode is unset (docs/fork-modes.md):
//   RegionOptions::fork_mode > ClientOptions::default_fork_mode > $PINRING_FORK_MODE
//   > ringd --default_fork_mode (announced in HelloReply) > built-in dontfork.
// Each case against a real ringd (cpu backend). A region's mode is judged three ways: what the
// Region reports, what ringd's stats say it registered, and whether the client's mapping carries
// MADV_DONTFORK (VmFlags "dc" in /proc/self/smaps).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "client_test_util.h"
#include "pinring/client.h"

namespace pinring {
namespace {

using ::pinring::testing::OptionsFor;
using ::pinring::testing::RingdProcess;
using ::pinring::testing::StartRingdOrDie;

// Sets (or unsets, for nullopt) PINRING_FORK_MODE for the scope; restores the old value.
class ScopedForkModeEnv {
 public:
  explicit ScopedForkModeEnv(std::optional<std::string> value) {
    if (const char* old = std::getenv("PINRING_FORK_MODE")) old_ = old;
    if (value) {
      setenv("PINRING_FORK_MODE", value->c_str(), 1);
    } else {
      unsetenv("PINRING_FORK_MODE");
    }
  }
  ~ScopedForkModeEnv() {
    if (old_) {
      setenv("PINRING_FORK_MODE", old_->c_str(), 1);
    } else {
      unsetenv("PINRING_FORK_MODE");
    }
  }

 private:
  std::optional<std::string> old_;
};

// VmFlags of the VMA containing addr, from /proc/self/smaps.
std::string VmFlagsAt(const void* addr) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool in_vma = false;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  while (std::getline(in, line)) {
    unsigned long lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if ((head >> std::hex >> lo >> dash >> hi) && dash == '-' && line.find(':') > line.find(' ')) {
      in_vma = a >= lo && a < hi;
    } else if (in_vma && line.rfind("VmFlags:", 0) == 0) {
      return line + " ";
    }
  }
  return "";
}
bool HasDontCopy(const void* addr) { return VmFlagsAt(addr).find(" dc ") != std::string::npos; }

// The fork_mode ringd's stats report for region `handle` of the only client.
std::string RingdForkMode(Client& c, std::uint32_t handle) {
  auto text = c.Stats();
  if (!text.ok()) return "stats: " + text.status().ToString();
  const auto j = nlohmann::json::parse(*text);
  for (const auto& cl : j.at("clients")) {
    for (const auto& r : cl.at("regions")) {
      if (r.at("handle") == handle) return r.at("fork_mode").get<std::string>();
    }
  }
  return "region not in ringd's stats: " + *text;
}

struct Case {
  std::vector<std::string> ringd_args = {};
  std::optional<std::string> env = std::nullopt;
  std::optional<ForkMode> client_default = std::nullopt;
  std::optional<ForkMode> region_mode = std::nullopt;
  ForkMode want = ForkMode::kKernel;
  std::string want_source = "";  // Client::default_fork_mode_source()
};

void CheckCase(const Case& k) {
  SCOPED_TRACE(::testing::Message() << "env=" << k.env.value_or("(unset)") << " want "
                                    << ForkModeName(k.want));
  ScopedForkModeEnv env(k.env);
  auto ringd = StartRingdOrDie("cpu", k.ringd_args);
  ASSERT_NE(ringd, nullptr);
  ClientOptions o = OptionsFor(*ringd);
  o.default_fork_mode = k.client_default;
  auto c = Client::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->default_fork_mode_source(), k.want_source);
  RegionOptions ro;
  ro.size = 64 * 1024;
  ro.fork_mode = k.region_mode;
  auto r = c->CreateRegion(ro);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->fork_mode(), k.want);
  EXPECT_EQ(RingdForkMode(*c, r->handle()), ForkModeName(k.want));
  EXPECT_EQ(HasDontCopy(r->data()), k.want == ForkMode::kDontFork) << VmFlagsAt(r->data());
}

// The case the issue names: no mode on the region, PINRING_FORK_MODE=dontfork, and a ringd whose
// own default differs (so the env, not ringd or the built-in, must be what decided).
TEST(ForkModeDefault, EnvDontForkAppliesToARegionWithoutAMode) {
  CheckCase({.ringd_args = {"--default_fork_mode=shared"},
             .env = "dontfork",
             .want = ForkMode::kDontFork,
             .want_source = "PINRING_FORK_MODE"});
}

TEST(ForkModeDefault, EnvKernelIsNotDontFork) {
  CheckCase({.env = "kernel", .want = ForkMode::kKernel, .want_source = "PINRING_FORK_MODE"});
}

TEST(ForkModeDefault, BuiltInIsDontForkWhenNothingIsConfigured) {
  CheckCase({.want = ForkMode::kDontFork, .want_source = "built-in"});
}

TEST(ForkModeDefault, RingdFlagIsTheDefaultWithoutEnvOrClientOption) {
  CheckCase({.ringd_args = {"--default_fork_mode=write-for-read"},
             .want = ForkMode::kWriteForRead,
             .want_source = "ringd --default_fork_mode"});
}

TEST(ForkModeDefault, EnvBeatsRingdFlag) {
  CheckCase({.ringd_args = {"--default_fork_mode=write-for-read"},
             .env = "kernel",
             .want = ForkMode::kKernel,
             .want_source = "PINRING_FORK_MODE"});
}

TEST(ForkModeDefault, ClientOptionBeatsEnvAndRingdFlag) {
  CheckCase({.ringd_args = {"--default_fork_mode=write-for-read"},
             .env = "kernel",
             .client_default = ForkMode::kShared,
             .want = ForkMode::kShared,
             .want_source = "ClientOptions"});
}

TEST(ForkModeDefault, RegionOptionBeatsEverything) {
  CheckCase({.ringd_args = {"--default_fork_mode=write-for-read"},
             .env = "kernel",
             .client_default = ForkMode::kShared,
             .region_mode = ForkMode::kDontFork,
             .want = ForkMode::kDontFork,
             .want_source = "ClientOptions"});
}

// odp through every layer: the name parses from the environment and from ringd's flag (the cpu
// backend pins nothing, so it serves odp regions as any other; verbs checks the device first).
TEST(ForkModeDefault, OdpFromTheEnvironmentAndFromRingdsFlag) {
  CheckCase({.env = "odp", .want = ForkMode::kOdp, .want_source = "PINRING_FORK_MODE"});
  CheckCase({.ringd_args = {"--default_fork_mode=odp"},
             .want = ForkMode::kOdp,
             .want_source = "ringd --default_fork_mode"});
}

TEST(ForkModeDefault, ServerInfoCarriesRingdFlag) {
  ScopedForkModeEnv env(std::nullopt);
  auto ringd = StartRingdOrDie("cpu", {"--default_fork_mode=kernel"});
  ASSERT_NE(ringd, nullptr);
  auto c = Client::Connect(OptionsFor(*ringd));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->info().default_fork_mode, ForkMode::kKernel);

  auto plain = StartRingdOrDie("cpu");
  ASSERT_NE(plain, nullptr);
  auto c2 = Client::Connect(OptionsFor(*plain));
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->info().default_fork_mode, std::nullopt);
}

TEST(ForkModeDefault, InvalidEnvIsAClearConnectError) {
  auto ringd = StartRingdOrDie("cpu");
  ASSERT_NE(ringd, nullptr);
  for (const char* bad : {"bogus", "DontFork", "dontfork ", "write_for_read"}) {
    ScopedForkModeEnv env{std::string(bad)};
    auto c = Client::Connect(OptionsFor(*ringd));
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
    EXPECT_NE(c.status().message().find(std::string("PINRING_FORK_MODE=") + bad),
              std::string::npos)
        << c.status();
    EXPECT_NE(c.status().message().find("kernel, dontfork, readonly, write-for-read, shared"),
              std::string::npos)
        << c.status();
  }
  // An explicit ClientOptions default means the environment is not consulted at all.
  ScopedForkModeEnv env{std::string("bogus")};
  ClientOptions o = OptionsFor(*ringd);
  o.default_fork_mode = ForkMode::kKernel;
  auto c = Client::Connect(o);
  EXPECT_TRUE(c.ok()) << c.status();
}

TEST(ForkModeDefault, RingdRefusesABadDefaultForkModeFlag) {
  for (const char* bad : {"--default_fork_mode=bogus", "--default_fork_mode=readonly"}) {
    auto p = RingdProcess::Start({"--backend=cpu", bad});
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_NE(p.status().message().find("--default_fork_mode="), std::string::npos) << p.status();
  }
}

}  // namespace
}  // namespace pinring
