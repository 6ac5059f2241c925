// --help for the C++ examples: Abseil's own --help lists only flags defined in a file named after
// the binary and exits 1; a user copying an example wants this program's flags and exit 0.
#pragma once

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"

namespace pinring_examples {

// If argv has --help or -h: prints `usage` and the flags defined under examples/, returns true.
inline bool HandleHelp(int argc, char** argv, const char* usage) {
  bool wanted = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) wanted = true;
  }
  if (!wanted) return false;
  std::printf("%s\n\nFlags:\n", usage);
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::StrContains(flag->Filename(), "examples/")) continue;
    std::printf("  --%s (%s; default: \"%s\")\n", std::string(name).c_str(),
                flag->Help().c_str(), flag->DefaultValue().c_str());
  }
  return true;
}

}  // namespace pinring_examples
