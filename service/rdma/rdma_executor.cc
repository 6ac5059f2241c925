#include "service/rdma/rdma_executor.h"

#include "service/descriptor_validator.h"

#include <algorithm>
#include <cstring>
#include <span>

namespace pinring::ringd {
CompletionStatus ValidateRdmaDescriptor(const Descriptor& d, RegionLookup& regions) {
  // The one descriptor contract (service/descriptor_validator.h), on ringd's table of the regions
  // this connection was granted. Two grants may cover the same bytes of the client's address
  // space: overlap is judged on the addresses (one backing per connection).
  return ValidateDescriptor(d, Transport::kRdma, [&](std::uint32_t h, RegionView* out) {
    const GrantedRegion* r = regions.Lookup(h);
    if (r == nullptr) return false;
    out->size = r->length;
    out->writable = r->writable;
    out->backing_offset = r->addr;  // addr + length was bounded at registration
    return true;
  });
}

rdma_async::Task<CompletionStatus> ExecuteOne(Descriptor d, RemoteOps& ops,
                                              std::uint64_t* result) {
  *result = 0;
  const CompletionStatus v = ValidateRdmaDescriptor(d, ops);
  if (v != CompletionStatus::kOk) co_return v;
  const auto op = static_cast<Opcode>(d.opcode);
  if (IsRemoteOpcode(d.opcode)) co_return co_await ops.Remote(d, result);
  // Validated: copy what we need now; the region table does not change during one descriptor.
  const GrantedRegion src = op == Opcode::kNop || op == Opcode::kFill ? GrantedRegion{}
                                                                      : *ops.Lookup(d.src_region);
  const GrantedRegion dst = op == Opcode::kNop || op == Opcode::kChecksum
                                ? GrantedRegion{}
                                : *ops.Lookup(d.dst_region);
  const std::uint32_t chunk_max = ops.bounce_size();
  std::byte* bounce = ops.bounce();
  switch (op) {
    case Opcode::kNop:
      co_return CompletionStatus::kOk;
    case Opcode::kChecksum: {
      std::uint64_t h = kFnv1a64Seed;
      for (std::uint64_t done = 0; done < d.length;) {
        const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_max, d.length - done));
        if (!(co_await ops.Read(src.addr + d.src_offset + done, src.rkey, n)).ok()) {
          co_return CompletionStatus::kDeviceError;
        }
        h = Fnv1a64(std::span<const std::byte>(bounce, n), h);
        done += n;
      }
      *result = h;
      co_return CompletionStatus::kOk;
    }
    case Opcode::kFill: {
      // The bounce buffer holds the pattern once; chunks are multiples of 8, so a 64-bit pattern
      // keeps its phase (dst_offset is 8-aligned for pattern fills).
      const std::uint32_t fill_len =
          static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_max, d.length));
      FillPattern(std::span<std::byte>(bounce, fill_len), d.value,
                  (d.flags & kDescFlagFillPattern64) != 0);
      for (std::uint64_t done = 0; done < d.length;) {
        const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(fill_len, d.length - done));
        if (!(co_await ops.Write(dst.addr + d.dst_offset + done, dst.rkey, n)).ok()) {
          co_return CompletionStatus::kDeviceError;
        }
        done += n;
      }
      *result = d.length;
      co_return CompletionStatus::kOk;
    }
    case Opcode::kCopy: {
      for (std::uint64_t done = 0; done < d.length;) {
        const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_max, d.length - done));
        if (!(co_await ops.Read(src.addr + d.src_offset + done, src.rkey, n)).ok() ||
            !(co_await ops.Write(dst.addr + d.dst_offset + done, dst.rkey, n)).ok()) {
          co_return CompletionStatus::kDeviceError;
        }
        done += n;
      }
      *result = d.length;
      co_return CompletionStatus::kOk;
    }
  }
  co_return CompletionStatus::kBadOpcode;
}

}  // namespace pinring::ringd
