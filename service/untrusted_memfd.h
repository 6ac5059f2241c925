// Mapping memory a client hands over as a memfd. Everything about the fd is untrusted: it may not
// be a memfd, may be too small, may be shrinkable (a client that shrinks a mapped file makes
// ringd's next access SIGBUS), may not be an eventfd where one is expected.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/fault_guard.h"
#include "service/unique_fd.h"

namespace pinring::ringd {

enum class SizeRule { kExact, kAtLeast };

// Which memory a mapping shows: the memfd's inode (st_dev, st_ino). Two handles registered from
// one memfd (or from two fds of one memfd) have the same identity, so they alias wherever their
// file ranges overlap; every mapping here starts at file offset 0, so a region offset is a file
// offset.
struct BackingId {
  dev_t dev = 0;
  ino_t ino = 0;
  friend bool operator==(const BackingId&, const BackingId&) = default;
};

// A mapping of client memory: the mapping itself, the memfd's identity, and the FaultGuard that
// absorbs a SIGBUS anywhere in it. Destroyed in reverse order: the guard stops watching, then
// the range is unmapped.
class ClientMapping {
 public:
  ClientMapping() = default;
  ClientMapping(Mapping m, BackingId id, std::size_t page, FaultGuard guard)
      : mapping_(std::move(m)), id_(id), page_(page), guard_(std::move(guard)) {}
  ~ClientMapping();
  ClientMapping(ClientMapping&&) noexcept = default;
  ClientMapping& operator=(ClientMapping&&) noexcept = default;

  void* addr() const { return mapping_.addr(); }
  std::byte* bytes() const { return mapping_.bytes(); }
  std::size_t size() const { return mapping_.size(); }
  const BackingId& backing() const { return id_; }
  // True once ringd took a SIGBUS in this range (FaultGuard): its contents are no longer the
  // client's, and nothing may be read from or written to it for the client again.
  bool faulted() const { return guard_.faulted(); }

 private:
  Mapping mapping_;
  BackingId id_;
  std::size_t page_ = 0;
  FaultGuard guard_;
};

// Checks that `fd` is sealed with F_SEAL_SHRINK (so the size cannot drop under ringd's mapping)
// and that its size is `size` (kExact) or at least `size` (kAtLeast); then mmaps `size` bytes
// MAP_SHARED with `prot` and watches them (FaultGuard). `what` names the fd in errors ("queue memfd", "region memfd").
// Errors: InvalidArgument naming the problem and the fix (e.g. "seal it with
// fcntl(F_ADD_SEALS, F_SEAL_SHRINK)"); the errno status of a failed mmap.
absl::StatusOr<ClientMapping> MapUntrustedMemfd(int fd, std::uint64_t size, SizeRule rule, int prot,
                                          absl::string_view what);

// InvalidArgument unless `fd` is an eventfd (readlink of /proc/self/fd/N is "anon_inode:[eventfd]").
absl::Status CheckIsEventfd(int fd, absl::string_view what);

}  // namespace pinring::ringd
