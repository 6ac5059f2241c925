#include "service/log.h"

#include <unistd.h>

#include <chrono>
#include <string>

namespace pinring::ringd {

void Log(LogLevel level, absl::string_view message) {
  const char* prefix = level == LogLevel::kError ? "<3>" : level == LogLevel::kWarning ? "<4>" : "<6>";
  std::string line = absl::StrCat(prefix, "ringd: ", message, "\n");
  // One write per line: atomic for lines up to PIPE_BUF on pipes, and good enough for journald.
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

bool LogRateLimiter::Allow(std::uint64_t* suppressed) {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  absl::MutexLock l(&mu_);
  if (now - window_start_ns_ >= kPeriodNs) {
    window_start_ns_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= kBurst) {
    ++suppressed_;
    return false;
  }
  ++in_window_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace pinring::ringd
