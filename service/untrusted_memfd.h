// Mapping memory a client hands over as a memfd. Everything about the fd is untrusted: it may not
// be a memfd, may be too small, may be shrinkable (a client that shrinks a mapped file makes
// ringd's next access SIGBUS), may not be an eventfd where one is expected.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/unique_fd.h"

namespace pinring::ringd {

enum class SizeRule { kExact, kAtLeast };

// Checks that `fd` is sealed with F_SEAL_SHRINK (so the size cannot drop under ringd's mapping)
// and that its size is `size` (kExact) or at least `size` (kAtLeast); then mmaps `size` bytes
// MAP_SHARED with `prot`. `what` names the fd in errors ("queue memfd", "region memfd").
// Errors: InvalidArgument naming the problem and the fix (e.g. "seal it with
// fcntl(F_ADD_SEALS, F_SEAL_SHRINK)"); the errno status of a failed mmap.
absl::StatusOr<Mapping> MapUntrustedMemfd(int fd, std::uint64_t size, SizeRule rule, int prot,
                                          absl::string_view what);

// InvalidArgument unless `fd` is an eventfd (readlink of /proc/self/fd/N is "anon_inode:[eventfd]").
absl::Status CheckIsEventfd(int fd, absl::string_view what);

}  // namespace pinring::ringd
