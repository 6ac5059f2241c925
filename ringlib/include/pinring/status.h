// Status helpers shared by ringlib, ringd and the tools. The one place errno becomes a Status.
#pragma once

#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "pinring/export.h"
#include "absl/status/statusor.h"

namespace pinring {

// Maps errno `err` to the absl code a caller can act on (absl::ErrnoToStatus: EAGAIN/EINTR ->
// Unavailable (retry), ENOMEM -> ResourceExhausted, EPERM/EACCES -> PermissionDenied, ENOENT ->
// NotFound, ...), prefixed with `what` (the failed call).
// The message ends with strerror(err).
PINRING_EXPORT absl::Status ErrnoToStatus(int err, absl::string_view what);

// ErrnoToStatus(errno, what), for use right after a failed call.
PINRING_EXPORT absl::Status LastErrnoStatus(absl::string_view what);

}  // namespace pinring

// Propagates a non-OK absl::Status from `expr`.
#define PINRING_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    if (absl::Status _st = (expr); !_st.ok()) return _st; \
  } while (0)

#define PINRING_STATUS_CONCAT_INNER(a, b) a##b
#define PINRING_STATUS_CONCAT(a, b) PINRING_STATUS_CONCAT_INNER(a, b)

// `lhs = value of expr`, or return its error. `lhs` may declare a variable: `auto x`.
#define PINRING_ASSIGN_OR_RETURN(lhs, expr)                                          \
  auto PINRING_STATUS_CONCAT(_statusor_, __LINE__) = (expr);                         \
  if (!PINRING_STATUS_CONCAT(_statusor_, __LINE__).ok())                             \
    return PINRING_STATUS_CONCAT(_statusor_, __LINE__).status();                     \
  lhs = std::move(PINRING_STATUS_CONCAT(_statusor_, __LINE__)).value()
