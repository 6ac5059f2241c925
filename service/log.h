// ringd's logger: one line per event on stderr (journald adds time and unit). No absl/log on
// Debian 12's Abseil, so this is the whole logging story.
#pragma once

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace pinring::ringd {

enum class LogLevel { kInfo, kWarning, kError };

// Writes "<level-prefix>ringd: message\n" with one write(2), so lines from threads do not mix.
// The prefix is a sd-daemon(3) priority ("<6>", "<4>", "<3>") that journald understands.
void Log(LogLevel level, absl::string_view message);

// Rate limit of one log statement: at most kBurst lines per kPeriodNs; the first line after a
// quiet spell says how many were suppressed. Every line an outside party (a client, a peer, a
// connection flood) can trigger goes through RINGD_LOG_LIMITED, so no one can fill the journal.
class LogRateLimiter {
 public:
  static constexpr std::uint32_t kBurst = 10;
  static constexpr std::int64_t kPeriodNs = 10'000'000'000;
  // True when this line may be written; *suppressed = lines dropped since the last one written.
  bool Allow(std::uint64_t* suppressed);

 private:
  absl::Mutex mu_;
  std::int64_t window_start_ns_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint32_t in_window_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pinring::ringd

#define RINGD_LOG(level, ...) \
  ::pinring::ringd::Log(::pinring::ringd::LogLevel::level, ::absl::StrCat(__VA_ARGS__))

// RINGD_LOG through a limiter of its own (one per call site).
#define RINGD_LOG_LIMITED(level, ...)                                                       \
  do {                                                                                      \
    static ::pinring::ringd::LogRateLimiter ringd_log_limiter_;                             \
    std::uint64_t ringd_log_suppressed_ = 0;                                                \
    if (ringd_log_limiter_.Allow(&ringd_log_suppressed_)) {                                 \
      ::pinring::ringd::Log(                                                                \
          ::pinring::ringd::LogLevel::level,                                                \
          ringd_log_suppressed_ == 0                                                        \
              ? ::absl::StrCat(__VA_ARGS__)                                                 \
              : ::absl::StrCat(__VA_ARGS__, " (", ringd_log_suppressed_,                    \
                               " more like this suppressed in the last 10 s)"));            \
    }                                                                                       \
  } while (0)
