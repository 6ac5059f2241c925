// --help for pinring's own programs (ringd, ringctl, pinring-forkcheck, pinring-soak).
//
// Abseil's built-in --help lists only the flags of a file named after the binary ("No flags
// matched" otherwise), titles them with the build machine's source path and exits 1. A user
// typing `ringd --help` wants the usage and this program's flags on stdout, and exit status 0, as
// every other Unix tool does. Call HandleHelp before absl::ParseCommandLine; --helpfull stays
// Abseil's (every flag linked in, including the libraries').
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"

namespace pinring::cli {

// True if argv asks for help: --help or -h (any position; "--" ends the flags).
inline bool WantsHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) return false;
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return true;
  }
  return false;
}

// Prints `usage`, then every flag defined in a source file under one of `folders` (e.g.
// "service/"), sorted by name, with its help text and default. No folders: `usage` already
// describes the flags.
inline void PrintHelp(std::string_view usage, std::initializer_list<std::string_view> folders) {
  if (folders.size() == 0) {
    std::printf("%.*s\n", static_cast<int>(usage.size()), usage.data());
    return;
  }
  std::vector<const absl::CommandLineFlag*> own;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string file = flag->Filename();
    if (std::any_of(folders.begin(), folders.end(),
                    [&](std::string_view f) { return file.find(f) != std::string::npos; })) {
      own.push_back(flag);
    }
  }
  std::sort(own.begin(), own.end(), [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  std::printf("%.*s\n\nFlags (--flag=value):\n", static_cast<int>(usage.size()), usage.data());
  for (const absl::CommandLineFlag* f : own) {
    const std::string def = f->DefaultValue();
    std::printf("  --%s\n      %s (default: %s)\n", std::string(f->Name()).c_str(), f->Help().c_str(),
                def.empty() ? "\"\"" : def.c_str());
  }
  std::printf("\n--helpfull lists every flag linked in, the libraries' too.\n");
}

// If argv asks for help: prints it to stdout and exits 0.
inline void HandleHelp(int argc, char** argv, std::string_view usage,
                       std::initializer_list<std::string_view> folders) {
  if (!WantsHelp(argc, argv)) return;
  PrintHelp(usage, folders);
  std::fflush(stdout);
  std::exit(0);
}

}  // namespace pinring::cli
