// ringd's logger: one line per event on stderr (journald adds time and unit). No absl/log on
// Debian 12's Abseil, so this is the whole logging story.
#pragma once

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace pinring::ringd {

enum class LogLevel { kInfo, kWarning, kError };

// Writes "<level-prefix>ringd: message\n" with one write(2), so lines from threads do not mix.
// The prefix is a sd-daemon(3) priority ("<6>", "<4>", "<3>") that journald understands.
void Log(LogLevel level, absl::string_view message);

}  // namespace pinring::ringd

#define RINGD_LOG(level, ...) \
  ::pinring::ringd::Log(::pinring::ringd::LogLevel::level, ::absl::StrCat(__VA_ARGS__))
