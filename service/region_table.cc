#include "service/region_table.h"

#include "absl/strings/str_cat.h"

namespace pinring::ringd {

absl::StatusOr<std::uint32_t> RegionTable::Insert(std::unique_ptr<Region> r) {
  absl::MutexLock l(&mu_);
  if (regions_.size() >= max_regions_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "region limit reached: this client has ", regions_.size(),
        " regions registered; deregister one, or raise ringd --max_regions (now ", max_regions_,
        ")"));
  }
  if (next_handle_ == 0) {  // 2^32 registrations: refuse rather than reuse a handle
    return absl::ResourceExhaustedError("region handles exhausted for this client; reconnect");
  }
  const std::uint32_t h = next_handle_++;
  r->handle = h;
  regions_.emplace(h, std::move(r));
  return h;
}

absl::StatusOr<std::unique_ptr<Region>> RegionTable::Remove(std::uint32_t handle) {
  absl::MutexLock l(&mu_);
  auto it = regions_.find(handle);
  if (it == regions_.end()) {
    return absl::NotFoundError(absl::StrCat("no region with handle ", handle));
  }
  std::unique_ptr<Region> r = std::move(it->second);
  regions_.erase(it);
  return r;
}

std::vector<std::unique_ptr<Region>> RegionTable::RemoveAll() {
  absl::MutexLock l(&mu_);
  std::vector<std::unique_ptr<Region>> out;
  out.reserve(regions_.size());
  for (auto& [h, r] : regions_) out.push_back(std::move(r));
  regions_.clear();
  return out;
}

std::size_t RegionTable::size() const {
  absl::ReaderMutexLock l(&mu_);
  return regions_.size();
}

}  // namespace pinring::ringd
