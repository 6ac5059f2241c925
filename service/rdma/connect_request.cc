#include "service/rdma/connect_request.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "pinring/ring_format.h"

namespace pinring::ringd {

absl::StatusOr<rdma::ConnectRequest> DecodeConnectRequest(std::string_view pdata,
                                                          std::uint32_t max_sq_entries) {
  rdma::ConnectRequest req{};
  if (pdata.size() < sizeof req) {
    return absl::InvalidArgumentError(
        absl::StrCat("private data of ", pdata.size(), " bytes: not a pinring client"));
  }
  std::memcpy(&req, pdata.data(), sizeof req);
  if (req.magic != rdma::kRdmaMagic) {
    return absl::InvalidArgumentError("bad magic: not a pinring client");
  }
  if (req.version != rdma::kRdmaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("rdma protocol version ", req.version, " unsupported"));
  }
  if ((req.flags & rdma::kConnectFlagPeer) != 0) {
    // A ringd peer has no rings: whatever it put in the ring fields is ignored (our staging
    // sizes come from our own minimum), only its receive depth matters.
    req.sq_entries = req.cq_entries = kMinRingEntries;
    req.sq_addr = req.cq_addr = 1;
  }
  // 64-bit arithmetic: max_sq_entries * 2 must not wrap for a huge configured limit.
  if (!IsValidRingSize(req.sq_entries) || !IsValidRingSize(req.cq_entries) ||
      req.cq_entries < req.sq_entries || req.sq_entries > max_sq_entries ||
      req.cq_entries > std::uint64_t{max_sq_entries} * 2) {
    return absl::InvalidArgumentError(absl::StrCat("ring sizes ", req.sq_entries, "/",
                                                   req.cq_entries, " invalid (max sq ",
                                                   max_sq_entries, ")"));
  }
  if (req.recv_depth == 0 || req.sq_addr == 0 || req.cq_addr == 0) {
    return absl::InvalidArgumentError("missing ring address or receive depth");
  }
  return req;
}

}  // namespace pinring::ringd
