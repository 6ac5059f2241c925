// Fuzz target: ringd's flagfile and configuration. The input is a flagfile (--name=value lines,
// comments, junk), applied flag by flag through Abseil's own parser, then turned into a Config by
// ringd's ConfigFromFlags and DeriveTenantLimits. ringd's flags are reset to their defaults before
// every input. A Config that validates must be usable: every limit positive after derivation.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "service/config.h"
#include "service/flags.h"

namespace {

const std::vector<std::string>& RingdFlagNames() {
  static const auto* names = new std::vector<std::string>{
      "socket", "socket_mode", "socket_group", "backend", "device", "gid_index", "pollers",
      "adaptive_poll_us", "max_queues", "max_regions", "max_ring_entries", "max_pinned_bytes",
      "max_region_bytes", "max_connections", "max_connections_per_uid", "max_queues_total",
      "max_queues_per_uid", "max_registered_bytes", "max_registered_bytes_per_uid",
      "admin_group", "handshake_timeout_ms", "serve_budget_bytes", "default_fork_mode"};
  return *names;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pinring::ringd;
  std::string err;
  for (const std::string& n : RingdFlagNames()) {
    absl::CommandLineFlag* f = absl::FindCommandLineFlag(n);
    if (f == nullptr || !f->ParseFrom(f->DefaultValue(), &err)) std::abort();  // a lost flag
  }
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    if (!absl::ConsumePrefix(&line, "--")) continue;  // Abseil rejects these lines too
    const auto eq = line.find('=');
    const absl::string_view name = line.substr(0, eq);
    const absl::string_view value = eq == absl::string_view::npos ? "" : line.substr(eq + 1);
    absl::CommandLineFlag* f = absl::FindCommandLineFlag(name);
    if (f == nullptr) continue;  // ParseCommandLine would exit: "unknown flag"
    (void)f->ParseFrom(value, &err);
  }
  auto c = ConfigFromFlags();
  if (!c.ok()) return 0;  // refused with a message: fine
  DeriveTenantLimits(*c, std::uint64_t{8} << 30, 1024);
  const TenantLimits& t = c->tenants;
  if (t.max_connections == 0 || t.max_connections_per_uid == 0 || t.max_queues_total == 0 ||
      t.max_queues_per_uid == 0 || t.max_registered_bytes == 0 ||
      t.max_registered_bytes_per_uid == 0) {
    std::abort();
  }
  // What a validated config announces to clients (HelloReply) must be the config itself.
  const pinring::wire::Limits l = c->limits.ToWire();
  if (l.max_queues != c->limits.max_queues || l.max_sq_entries != c->limits.max_ring_entries ||
      l.max_region_bytes != c->limits.max_region_bytes || BackendKindName(c->backend).empty()) {
    std::abort();
  }
  return 0;
}
