// Region: lifetime of a registered memfd region. Creation is in client.cc.
#include "pinring/region.h"

#include <sys/mman.h>

#include <utility>

#include "connection.h"
#include "verbs/fork_safety.h"
#include "pinring/fork_generation.h"

namespace pinring {

Region::Region(Region&& other) noexcept { *this = std::move(other); }

Region& Region::operator=(Region&& other) noexcept {
  if (this == &other) return *this;
  Reset();
  conn_ = std::move(other.conn_);
  addr_ = std::exchange(other.addr_, nullptr);
  map_len_ = std::exchange(other.map_len_, 0);
  size_ = std::exchange(other.size_, 0);
  handle_ = std::exchange(other.handle_, 0);
  generation_ = other.generation_;
  fork_mode_ = other.fork_mode_;
  huge_pages_ = other.huge_pages_;
  fork_safety_applied_ = std::exchange(other.fork_safety_applied_, false);
  pinned_after_ = other.pinned_after_;
  return *this;
}

Region::~Region() { Reset(); }

void Region::Reset() {
  if (addr_ != nullptr && generation_ == internal::CurrentForkGeneration()) {
    // Only the creating process deregisters: a forked child speaking on the inherited socket
    // would unregister its parent's memory.
    if (conn_ != nullptr && !conn_->dead()) {
      wire::DeregisterRegion req{};
      req.handle = handle_;
      // Best effort: when ringd is gone, so is the registration.
      (void)conn_->CallFixed<wire::DeregisterRegionReply>(
          wire::MessageType::kDeregisterRegion, req, {}, wire::MessageType::kDeregisterRegionReply);
    }
    // After deregistration, before unmapping (fork_safety.h's contract).
    if (fork_safety_applied_) internal::ReleaseForkSafety(addr_, map_len_, fork_mode_);
    ::munmap(addr_, map_len_);
  }
  // In a forked child: a kDontFork region is not mapped at all, and anything else is the
  // child's private business; leave the address space alone and never talk to ringd.
  addr_ = nullptr;
  map_len_ = 0;
  size_ = 0;
  handle_ = 0;
  fork_safety_applied_ = false;
  conn_.reset();
}

}  // namespace pinring
