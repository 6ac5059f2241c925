// A data region: memory shared with ringd (a sealed memfd mapped MAP_SHARED by both sides) that
// ringd registers with the device. Descriptors name it by handle().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "pinring/export.h"
#include "pinring/fork_mode.h"

namespace pinring {

namespace internal {
class Connection;
}  // namespace internal

struct RegionOptions {
  // Bytes the device may access. REQUIRES: > 0 and <= HelloReply limits.max_region_bytes. The
  // memfd is rounded up to the page (or huge page) size; bounds checks in ringd use `size`.
  std::uint64_t size = 0;
  // Back the region with MFD_HUGETLB pages (the default huge page size). Fails with
  // ResourceExhausted naming /proc/sys/vm/nr_hugepages when none are reserved.
  bool huge_pages = false;
  // How the registration survives fork(); see fork_mode.h and docs/fork-modes.md. Unset: the
  // client's default (Client::default_fork_mode(): ClientOptions::default_fork_mode, else
  // $PINRING_FORK_MODE, else ringd's --default_fork_mode, else dontfork).
  std::optional<ForkMode> fork_mode = std::nullopt;
};

// RAII handle: the destructor deregisters the region from ringd and unmaps it. Move-only.
// Thread-compatible: distinct Regions may be used from distinct threads; the bytes themselves
// follow the usual rules for memory shared with a device (do not write bytes an in-flight
// descriptor reads).
class PINRING_EXPORT Region {
 public:
  Region() = default;  // an empty handle; only assignment and destruction are valid
  Region(Region&& other) noexcept;
  Region& operator=(Region&& other) noexcept;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  // Deregisters (best effort; not from a forked child, which must never speak for its parent)
  // and unmaps.
  ~Region();

  // The handle to put in Descriptor::src_region / dst_region. Local to the owning Client.
  std::uint32_t handle() const { return handle_; }
  // The mapped bytes, `size()` long. Owned by this Region; invalid after it is destroyed.
  std::byte* data() const { return static_cast<std::byte*>(addr_); }
  std::span<std::byte> bytes() const { return {data(), static_cast<std::size_t>(size_)}; }
  std::uint64_t size() const { return size_; }
  // The mode this region was registered under (the option, or the client's default).
  ForkMode fork_mode() const { return fork_mode_; }
  bool huge_pages() const { return huge_pages_; }
  // Bytes this client had pinned in ringd right after this region was registered.
  std::uint64_t pinned_bytes_after_register() const { return pinned_after_; }
  bool valid() const { return addr_ != nullptr; }

 private:
  friend class Client;
  void Reset();

  std::shared_ptr<internal::Connection> conn_;
  void* addr_ = nullptr;
  std::size_t map_len_ = 0;
  std::uint64_t size_ = 0;
  std::uint32_t handle_ = 0;
  std::uint32_t generation_ = 0;
  ForkMode fork_mode_ = ForkMode::kDontFork;
  bool huge_pages_ = false;
  bool fork_safety_applied_ = false;
  std::uint64_t pinned_after_ = 0;
};

}  // namespace pinring
