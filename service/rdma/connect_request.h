// Decoding a ConnectRequest's private data: the first bytes any rdma_cm peer (a client or a peer
// ringd) sends ringd. Untrusted: size, magic, version and every size are checked against ringd's
// own limits before anything is allocated. A pure function, so it is fuzzed on its own
// (tests/fuzz/fuzz_rdma_wire.cc).
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "wire/rdma_wire.h"

namespace pinring::ringd {

// The normalised request (a peer ringd's ring fields are replaced by ringd's own minimum), or
// the status ringd rejects the connection with: InvalidArgument for malformed data,
// FailedPrecondition for another protocol version.
absl::StatusOr<rdma::ConnectRequest> DecodeConnectRequest(std::string_view private_data,
                                                          std::uint32_t max_sq_entries);

}  // namespace pinring::ringd
