// ringd's command-line flags (Abseil flags; --flagfile=FILE reads more of them from a file).
#pragma once

#include "absl/status/statusor.h"
#include "service/config.h"

namespace pinring::ringd {

// The Config the parsed flags describe, validated. InvalidArgument naming the bad flag.
absl::StatusOr<Config> ConfigFromFlags();

// Makes --help list ringd's flags (they live in service/, not in main.cc).
// ringd's usage line (--help, tools/common/cli_help.h).
extern const char kRingdUsage[];
void InstallUsageConfig();

}  // namespace pinring::ringd
