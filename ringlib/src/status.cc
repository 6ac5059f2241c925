#include "pinring/status.h"

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace pinring {

absl::Status ErrnoToStatus(int err, absl::string_view what) {
  if (err == 0) return absl::UnknownError(absl::StrCat(what, ": failed without setting errno"));
  // Abseil's mapping: EAGAIN/EINTR -> Unavailable, ENOMEM -> ResourceExhausted, EPERM ->
  // PermissionDenied, ENOENT -> NotFound, ...; the message ends with strerror(err).
  return absl::ErrnoToStatus(err, what);
}

absl::Status LastErrnoStatus(absl::string_view what) { return pinring::ErrnoToStatus(errno, what); }

}  // namespace pinring
