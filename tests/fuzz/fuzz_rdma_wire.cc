// Fuzz target: every decoder of rdma transport bytes a client or a peer ringd controls.
//   - ConnectRequest private data (DecodeConnectRequest), against ringd's ring limit;
//   - a received control SEND (rdma::IsWellFormed, inline doorbells included), then, for a doorbell's descriptors, the
//     transport's validator (ValidateRdmaDescriptor) against a table of grants the input also
//     chooses (addresses, lengths, writability);
//   - GrantToken text (ParseGrantToken), which must round-trip through FormatGrantToken.
// The first input byte picks the decoder.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "pinring/rdma_queue.h"
#include "wire/rdma_wire.h"
#include "service/rdma/connect_request.h"
#include "service/rdma/rdma_executor.h"

namespace pinring::ringd {
namespace {

class Grants final : public RegionLookup {
 public:
  const GrantedRegion* Lookup(std::uint32_t h) override {
    auto it = table.find(h);
    return it == table.end() ? nullptr : &it->second;
  }
  absl::flat_hash_map<std::uint32_t, GrantedRegion> table;
};

}  // namespace
}  // namespace pinring::ringd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pinring;
  using namespace pinring::ringd;
  if (size == 0) return 0;
  const std::uint8_t which = data[0] % 3;
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (which) {
    case 0: {
      std::uint32_t max_sq = 4096;
      if (rest.size() >= 4 && (rest[0] & 1)) std::memcpy(&max_sq, rest.data(), 4);
      auto r = DecodeConnectRequest(std::string_view(rest.data(), rest.size()), max_sq);
      if (r.ok()) {
        // What ringd accepts it sizes staging from: must be within its limits.
        if (!IsValidRingSize(r->sq_entries) || r->sq_entries > max_sq ||
            r->cq_entries < r->sq_entries || r->recv_depth == 0) {
          std::abort();
        }
      }
      break;
    }
    case 1: {
      rdma::ControlMessage m{};
      std::memcpy(&m, rest.data(), std::min(rest.size(), sizeof m));
      if (rdma::IsWellFormed(m, rest.size())) {
        // What ringd accepts fits its receive slot, and an inline doorbell's descriptor count
        // is what its length says (Connection::Poll copies at most kMaxInlineDescriptors).
        const bool inline_db =
            m.type == static_cast<std::uint16_t>(rdma::ControlType::kDoorbellInline);
        if (rest.size() > rdma::kRequestSlotBytes || m.type == 6 ||
            (inline_db ? (m.length == 0 || m.length > rdma::kMaxInlineDescriptors ||
                          rest.size() != rdma::InlineDoorbellBytes(m.length))
                       : rest.size() != sizeof m)) {
          std::abort();
        }
      }
      // Grants: up to 4, each 17 bytes (addr, length, writable); then descriptors.
      Grants g;
      std::size_t pos = 0;
      const std::uint8_t ngrants = rest.empty() ? 0 : rest[pos++] % 5;
      for (std::uint8_t i = 0; i < ngrants && pos + 17 <= rest.size(); ++i, pos += 17) {
        GrantedRegion r;
        std::memcpy(&r.addr, rest.data() + pos, 8);
        std::memcpy(&r.length, rest.data() + pos + 8, 8);
        r.writable = (rest[pos + 16] & 1) != 0;
        r.rkey = i + 1;
        if (r.addr + r.length < r.addr) r.length = ~r.addr;  // ringd refuses wrapping grants
        g.table[i + 1] = r;
      }
      while (pos + sizeof(Descriptor) <= rest.size()) {
        Descriptor d;
        std::memcpy(&d, rest.data() + pos, sizeof d);
        pos += sizeof d;
        d.src_region %= 6;
        d.dst_region %= 6;
        const CompletionStatus st = ValidateRdmaDescriptor(d, g);
        if (st == CompletionStatus::kOk && d.opcode == static_cast<std::uint8_t>(Opcode::kCopy)) {
          // Accepted COPYs never overlap in the client's memory.
          const GrantedRegion* s = g.Lookup(d.src_region);
          const GrantedRegion* t = g.Lookup(d.dst_region);
          const std::uint64_t a = s->addr + d.src_offset, b = t->addr + d.dst_offset;
          if (d.length != 0 && a < b + d.length && b < a + d.length) std::abort();
        }
      }
      break;
    }
    case 2: {
      auto t = ParseGrantToken(rest);
      if (t.ok()) {
        auto again = ParseGrantToken(FormatGrantToken(*t));
        if (!again.ok() || again->node != t->node || again->handle != t->handle ||
            again->key != t->key) {
          std::abort();
        }
      }
      break;
    }
  }
  return 0;
}
