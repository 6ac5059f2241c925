// What every uid holds across its connections, and the daemon-wide totals: connections, queues and
// registered bytes, checked against TenantLimits. Per-connection limits (ClientLimits) are the
// session's own business; these are the ones no single connection can see. Event-loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/config.h"

namespace pinring::ringd {

class TenantTable {
 public:
  explicit TenantTable(const TenantLimits& limits) : limits_(limits) {}

  // A new connection of `uid`. Admin peers may use kAdminReserveConnections slots past
  // --max_connections and are not held to --max_connections_per_uid. ResourceExhausted naming
  // the flag otherwise.
  absl::Status AdmitConnection(uid_t uid, bool admin);
  void ReleaseConnection(uid_t uid);

  absl::Status ChargeQueue(uid_t uid);
  void ReleaseQueue(uid_t uid);

  // `what` names the registration in the error ("the queue", "the region").
  absl::Status ChargeBytes(uid_t uid, std::uint64_t bytes, absl::string_view what);
  void ReleaseBytes(uid_t uid, std::uint64_t bytes);

  struct Usage {
    std::uint32_t connections = 0;
    std::uint32_t queues = 0;
    std::uint64_t registered_bytes = 0;
  };
  const Usage& total() const { return total_; }
  Usage ForUid(uid_t uid) const;
  const TenantLimits& limits() const { return limits_; }

 private:
  void Drop(uid_t uid);  // forgets a uid that holds nothing any more

  const TenantLimits limits_;
  Usage total_;
  absl::flat_hash_map<uid_t, Usage> by_uid_;
};

}  // namespace pinring::ringd
