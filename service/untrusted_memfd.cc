#include "service/untrusted_memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "absl/strings/str_cat.h"
#include "pinring/status.h"

namespace pinring::ringd {

absl::StatusOr<ClientMapping> MapUntrustedMemfd(int fd, std::uint64_t size, SizeRule rule, int prot,
                                          absl::string_view what) {
  if (size == 0) return absl::InvalidArgumentError(absl::StrCat(what, ": size 0"));
  // Seals first: without F_SEAL_SHRINK the client could ftruncate() the file after ringd checked
  // its size, and every later access by ringd past the new end would raise SIGBUS in ringd.
  const int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is not a sealable memfd (F_GET_SEALS failed): create it with "
              "memfd_create(..., MFD_ALLOW_SEALING)"));
  }
  if ((seals & F_SEAL_SHRINK) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is not sealed against shrinking: call fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) "
              "before sending it (ringd refuses files that could shrink under its mapping)"));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) return pinring::LastErrnoStatus(absl::StrCat("fstat(", what, ")"));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a regular (memfd) file"));
  }
  const std::uint64_t actual = static_cast<std::uint64_t>(st.st_size);
  if (rule == SizeRule::kExact ? actual != size : actual < size) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", actual, " bytes, expected ",
                                                   rule == SizeRule::kExact ? "exactly " : "at least ",
                                                   size));
  }
  if (size > SIZE_MAX) return absl::InvalidArgumentError(absl::StrCat(what, ": size too large"));
  void* p = mmap(nullptr, static_cast<std::size_t>(size), prot, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return pinring::LastErrnoStatus(absl::StrCat("mmap(", what, ")"));
  Mapping m(p, static_cast<std::size_t>(size));
  // st_blksize is the page size of the file's mapping (the huge page size on hugetlbfs): the
  // fault handler replaces whole pages.
  const std::size_t page = st.st_blksize > 0 ? static_cast<std::size_t>(st.st_blksize) : 4096;
  PINRING_ASSIGN_OR_RETURN(FaultGuard guard, FaultGuard::Watch(p, m.size(), page));
  return ClientMapping(std::move(m), BackingId{st.st_dev, st.st_ino}, page, std::move(guard));
}

ClientMapping::~ClientMapping() {
  // After a fault the handler mapped anonymous memory over whole pages; a size that is not a
  // multiple of the page leaves a tail past size() that Mapping's munmap would not cover.
  if (mapping_.addr() != nullptr && guard_.faulted() && page_ != 0) {
    const std::size_t rounded = (mapping_.size() + page_ - 1) / page_ * page_;
    if (rounded > mapping_.size()) munmap(mapping_.bytes() + mapping_.size(), rounded - mapping_.size());
  }
}

absl::Status CheckIsEventfd(int fd, absl::string_view what) {
  char link[64] = {};
  const std::string path = absl::StrCat("/proc/self/fd/", fd);
  const ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
  if (n < 0 || absl::string_view(link, static_cast<std::size_t>(n)) != "anon_inode:[eventfd]") {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not an eventfd"));
  }
  return absl::OkStatus();
}

}  // namespace pinring::ringd
