#include "service/log.h"

#include <unistd.h>

#include <string>

namespace pinring::ringd {

void Log(LogLevel level, absl::string_view message) {
  const char* prefix = level == LogLevel::kError ? "<3>" : level == LogLevel::kWarning ? "<4>" : "<6>";
  std::string line = absl::StrCat(prefix, "ringd: ", message, "\n");
  // One write per line: atomic for lines up to PIPE_BUF on pipes, and good enough for journald.
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace pinring::ringd
