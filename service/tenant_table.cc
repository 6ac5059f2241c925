#include "service/tenant_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace pinring::ringd {

absl::Status TenantTable::AdmitConnection(uid_t uid, bool admin) {
  Usage& u = by_uid_[uid];
  const std::uint32_t global_limit =
      limits_.max_connections + (admin ? kAdminReserveConnections : 0);
  if (total_.connections >= global_limit) {
    Drop(uid);
    return absl::ResourceExhaustedError(absl::StrCat(
        "ringd has ", total_.connections, " connections, its --max_connections=",
        limits_.max_connections, " limit: close some, or raise --max_connections"));
  }
  if (!admin && u.connections >= limits_.max_connections_per_uid) {
    Drop(uid);
    return absl::ResourceExhaustedError(absl::StrCat(
        "uid ", uid, " already has ", u.connections, " connections to ringd, the "
        "--max_connections_per_uid=", limits_.max_connections_per_uid,
        " limit: close some, or raise --max_connections_per_uid"));
  }
  ++u.connections;
  ++total_.connections;
  return absl::OkStatus();
}

void TenantTable::ReleaseConnection(uid_t uid) {
  auto it = by_uid_.find(uid);
  if (it == by_uid_.end() || it->second.connections == 0) return;
  --it->second.connections;
  --total_.connections;
  Drop(uid);
}

absl::Status TenantTable::ChargeQueue(uid_t uid) {
  Usage& u = by_uid_[uid];
  if (total_.queues >= limits_.max_queues_total) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "ringd serves ", total_.queues, " queues, its --max_queues_total=",
        limits_.max_queues_total, " limit: destroy some, or raise --max_queues_total"));
  }
  if (u.queues >= limits_.max_queues_per_uid) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "uid ", uid, " already has ", u.queues, " queues, the --max_queues_per_uid=",
        limits_.max_queues_per_uid, " limit: destroy some, or raise --max_queues_per_uid"));
  }
  ++u.queues;
  ++total_.queues;
  return absl::OkStatus();
}

void TenantTable::ReleaseQueue(uid_t uid) {
  auto it = by_uid_.find(uid);
  if (it == by_uid_.end() || it->second.queues == 0) return;
  --it->second.queues;
  --total_.queues;
  Drop(uid);
}

absl::Status TenantTable::ChargeBytes(uid_t uid, std::uint64_t bytes, absl::string_view what) {
  Usage& u = by_uid_[uid];
  // Overflow-safe: bytes is client-chosen (bounded by --max_region_bytes, but do not rely on it).
  const std::uint64_t global = limits_.max_registered_bytes;
  if (bytes > global || total_.registered_bytes > global - bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " of ", bytes, " bytes would bring ringd to ", total_.registered_bytes + bytes,
        " bytes registered by all clients, over --max_registered_bytes=", global,
        ": free some, or raise --max_registered_bytes"));
  }
  const std::uint64_t per_uid = limits_.max_registered_bytes_per_uid;
  if (bytes > per_uid || u.registered_bytes > per_uid - bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " of ", bytes, " bytes would bring uid ", uid, " to ", u.registered_bytes + bytes,
        " bytes registered over all its connections, over --max_registered_bytes_per_uid=",
        per_uid, ": free some, or raise --max_registered_bytes_per_uid"));
  }
  u.registered_bytes += bytes;
  total_.registered_bytes += bytes;
  return absl::OkStatus();
}

void TenantTable::ReleaseBytes(uid_t uid, std::uint64_t bytes) {
  auto it = by_uid_.find(uid);
  if (it == by_uid_.end()) return;
  const std::uint64_t n = std::min(bytes, it->second.registered_bytes);
  it->second.registered_bytes -= n;
  total_.registered_bytes -= n;
  Drop(uid);
}

TenantTable::Usage TenantTable::ForUid(uid_t uid) const {
  auto it = by_uid_.find(uid);
  return it == by_uid_.end() ? Usage{} : it->second;
}

void TenantTable::Drop(uid_t uid) {
  auto it = by_uid_.find(uid);
  if (it != by_uid_.end() && it->second.connections == 0 && it->second.queues == 0 &&
      it->second.registered_bytes == 0) {
    by_uid_.erase(it);
  }
}

}  // namespace pinring::ringd
