// The contract of the `rdma` transport between a client (ringlib) and ringd, over one RC QP set up
// with librdmacm. Both sides compile against this header; see docs/rdma-transport.md.
//
//   connect   the client's rdma_connect() carries ConnectRequest as private data: where its
//             submission ring (SQ) and completion ring (CQ) live (address + rkey of its own MRs).
//             ringd answers with ConnectReply in rdma_accept()'s private data, or rejects.
//   control   every client -> ringd message is one ControlMessage in a SEND (a kDoorbellInline
//             one followed by its descriptors): doorbells (the new SQ tail), region
//             registration / deregistration. ringd accepts nothing but SENDs. ringd -> client: replies and the error
//             that ends a connection, also ControlMessage SENDs.
//   data      Two paths bring descriptors to ringd, both from the client's SQ ring:
//             - pull: a kDoorbell names the new tail; ringd RDMA READs the descriptors from the
//               client's SQ MR (any batch);
//             - inline (small batches): a kDoorbellInline SEND carries the descriptors it
//               announces right behind its ControlMessage (at most kMaxInlineDescriptors). The
//               client wrote them into its SQ ring first, as for a pull.
//             ringd executes them with RDMA READ / WRITE against the client's region MRs, then
//             RDMA WRITEs the Completions into the client's CQ MR; the last WRITE of a batch is a
//             WRITE_WITH_IMM whose immediate is the new CQ tail (network order). The client's
//             receive completion for it (IBV_WC_RECV_RDMA_WITH_IMM) comes after the data of
//             every WRITE before it on the RC QP, so the completions are visible when it polls.
//             A NOP round trip is two device operations: the doorbell SEND, the WRITE_WITH_IMM.
//
// The SQ is sq_entries x Descriptor, the CQ cq_entries x Completion (ring_format.h), slots
// `index & (entries - 1)`, indices free-running uint32. The client never has more than sq_entries
// descriptors unreaped (cq_entries >= sq_entries), so ringd never overwrites an unread completion
// and the client reuses a slot only after its completion arrived. Everything the client sends is
// untrusted in ringd: the doorbell tail is bounded by ringd's own head + sq_entries, region ranges
// are checked against what was declared, and the NIC checks every access against the rkey.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "pinring/grant_token.h"
#include "pinring/ring_format.h"

namespace pinring::rdma {

inline constexpr std::uint32_t kRdmaMagic = 0x52524e50;  // "PNRR" in little-endian memory
// 2: inline doorbells and WRITE_WITH_IMM completion notifications (1: doorbell SEND, RDMA READ,
// completion WRITE, kCompletions SEND). ringd speaks only its own version.
inline constexpr std::uint16_t kRdmaVersion = 2;
// ringd's default rdma_cm port (the perftest convention). --rdma_port=0 disables the listener.
inline constexpr std::uint16_t kDefaultRdmaPort = 18515;

// Receive buffers each side keeps posted beyond the ring sizes (control replies, errors).
inline constexpr std::uint32_t kControlSlack = 8;

// ringd -> client messages are sent from, and received into, slots of kSlotBytes; client ->
// ringd messages (which may carry inline descriptors) use kRequestSlotBytes: one message per
// slot, cache-line aligned. A sender keeps kSendSlots SENDs (or notification WRITE_WITH_IMMs) in
// flight at most, which bounds the receives its peer must keep posted.
inline constexpr std::uint32_t kSlotBytes = 128;
inline constexpr std::uint32_t kMaxInlineDescriptors = 32;
inline constexpr std::uint32_t kSendSlots = 16;
// Work-request ids: a receive's id carries kRecvTag and its slot, a SEND's (and ringd's
// notification WRITE_WITH_IMM's) carries kSendTag and its send slot; other ids (one-sided
// operations) carry neither bit.
inline constexpr std::uint64_t kRecvTag = 1ull << 62;
inline constexpr std::uint64_t kSendTag = 1ull << 61;

// ConnectRequest::flags
inline constexpr std::uint16_t kConnectFlagSqReadOnly = 1u << 0;  // informational: SQ fork mode
// A ringd connecting to another ringd to forward REMOTE_WRITE / REMOTE_READ (no rings: the ring
// fields are ignored; only kPeerOp messages are accepted on such a connection).
inline constexpr std::uint16_t kConnectFlagPeer = 1u << 1;

// Private data of rdma_connect (an RC REQ carries at most 56 bytes).
struct ConnectRequest {
  std::uint32_t magic;    // kRdmaMagic
  std::uint16_t version;  // kRdmaVersion
  std::uint16_t flags;    // kConnectFlag*
  std::uint32_t sq_entries;
  std::uint32_t cq_entries;  // >= sq_entries
  std::uint64_t sq_addr;     // client virtual address of slot 0
  std::uint64_t cq_addr;
  std::uint32_t sq_rkey;  // REMOTE_READ
  std::uint32_t cq_rkey;  // REMOTE_WRITE
  std::uint32_t recv_depth;  // receives the client keeps posted (ringd's notification budget)
  std::uint32_t reserved;
};
static_assert(sizeof(ConnectRequest) == 48 && sizeof(ConnectRequest) <= 56);
static_assert(std::is_trivially_copyable_v<ConnectRequest>);

// Private data of rdma_accept / rdma_reject (an RC REP carries at most 196 bytes, a REJ 148).
struct ConnectReply {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t reserved0;
  std::int32_t code;  // absl::StatusCode; 0 on accept
  std::uint32_t connection_id;
  std::uint32_t max_regions;
  std::uint32_t reserved1;
  char text[96];  // NUL-terminated reason on reject
};
static_assert(sizeof(ConnectReply) == 120 && sizeof(ConnectReply) <= 148);

enum class ControlType : std::uint16_t {
  kDoorbell = 1,                // client -> ringd: value = new sq_tail
  kRegisterRegion = 2,          // client -> ringd: addr, length, rkey, flags -> handle
  kRegisterRegionReply = 3,     // ringd -> client: code, handle
  kDeregisterRegion = 4,        // client -> ringd: handle
  kDeregisterRegionReply = 5,   // ringd -> client: code
  kError = 7,                   // ringd -> client: code, text; ringd then disconnects
  // Grants (remote data movement, see GrantToken).
  kExportRegion = 8,            // client -> ringd: handle (one of its regions) -> a grant
  kExportRegionReply = 9,       // ringd -> client: code, handle = grant handle, value = key,
                                //   addr = node
  kRevokeGrant = 10,            // client -> ringd: handle = grant handle (one it exported)
  kRevokeGrantReply = 11,       // ringd -> client: code
  kPeerOp = 12,                 // ringd -> ringd (peer connection): PeerOp
  kPeerOpReply = 13,            // ringd -> ringd: seq, code = CompletionStatus, value = bytes
  // client -> ringd: value = new sq_tail, length = n (1..kMaxInlineDescriptors), followed in the
  // same SEND by the n descriptors [sq_tail - n, sq_tail) (InlineDoorbellBytes(n) in all).
  kDoorbellInline = 14,
};
inline constexpr std::uint16_t kControlTypeMax = 14;
// (Type 6 was version 1's kCompletions SEND; version 2 notifies with WRITE_WITH_IMM.)

// kRegisterRegion flags
inline constexpr std::uint32_t kRegionDeviceWritable = 1u << 0;  // registered with REMOTE_WRITE
inline constexpr std::uint32_t kRegionFlagsKnown = kRegionDeviceWritable;

struct ControlMessage {
  std::uint32_t magic;  // kRdmaMagic
  std::uint16_t type;   // ControlType
  std::uint16_t reserved0;
  std::uint32_t seq;   // requests: chosen by the client, echoed in the reply
  std::int32_t code;   // replies: absl::StatusCode
  std::uint64_t value;   // doorbell: sq_tail
  std::uint64_t addr;    // region: client virtual address
  std::uint64_t length;  // region: bytes
  std::uint32_t rkey;    // region
  std::uint32_t handle;  // region handle (ringd-granted)
  std::uint32_t flags;   // kRegion*
  char text[28];         // kError: short NUL-terminated reason
};
static_assert(sizeof(ControlMessage) == 80);
static_assert(std::is_trivially_copyable_v<ControlMessage>);
static_assert(sizeof(ControlMessage) <= kSlotBytes, "a control message fits one slot");

// GrantToken, NodeId, NodeAddr, NodePort: pinring/grant_token.h (client API).

// ringd -> ringd: one chunk of a forwarded REMOTE op. The requester exposes one buffer of its own
// (buf_addr/buf_rkey, at most kPeerChunkBytes); the granting ringd RDMA READs the chunk from it
// (kPeerWrite: into the grant) or RDMA WRITEs the chunk into it (kPeerRead: from the grant), then
// replies kPeerOpReply with the same seq. Everything in it is untrusted for the receiver.
inline constexpr std::uint32_t kPeerWrite = 1;
inline constexpr std::uint32_t kPeerRead = 2;
inline constexpr std::uint32_t kPeerChunkBytes = 64 * 1024;
struct PeerOp {
  std::uint32_t magic;  // kRdmaMagic
  std::uint16_t type;   // kPeerOp
  std::uint16_t reserved0;
  std::uint32_t seq;
  std::int32_t code;   // unused in requests
  std::uint64_t key;   // grant key
  std::uint64_t offset;  // in the granted region
  std::uint64_t buf_addr;
  std::uint32_t length;  // <= kPeerChunkBytes
  std::uint32_t buf_rkey;
  std::uint32_t handle;     // grant handle
  std::uint32_t direction;  // kPeerWrite / kPeerRead
  std::uint8_t reserved1[24];
};
static_assert(sizeof(PeerOp) == 80);
static_assert(std::is_trivially_copyable_v<PeerOp>);

// A kDoorbellInline SEND of n descriptors.
constexpr std::size_t InlineDoorbellBytes(std::uint64_t n) {
  return sizeof(ControlMessage) + n * sizeof(Descriptor);
}
inline constexpr std::uint32_t kRequestSlotBytes =
    static_cast<std::uint32_t>(RoundUp(InlineDoorbellBytes(kMaxInlineDescriptors), 64));
static_assert(kRequestSlotBytes == 2176 && kSlotBytes <= kRequestSlotBytes);

// Untrusted input: a received buffer is a ControlMessage only when it has the magic, a known type
// other than the retired 6, and exactly that message's size: sizeof(ControlMessage), or for
// kDoorbellInline the header plus the 1..kMaxInlineDescriptors descriptors its length counts.
inline bool IsWellFormed(const ControlMessage& m, std::size_t received) {
  if (m.magic != kRdmaMagic || m.type < 1 || m.type > kControlTypeMax || m.type == 6) return false;
  if (m.type == static_cast<std::uint16_t>(ControlType::kDoorbellInline)) {
    return m.length >= 1 && m.length <= kMaxInlineDescriptors &&
           received == InlineDoorbellBytes(m.length);
  }
  return received == sizeof(ControlMessage);
}

// Bytes of the client's SQ / CQ MRs for given ring sizes (page-rounded).
constexpr std::uint64_t SqBytes(std::uint32_t entries) {
  return RoundUp(std::uint64_t{entries} * sizeof(Descriptor), kPageSize);
}
constexpr std::uint64_t CqBytes(std::uint32_t entries) {
  return RoundUp(std::uint64_t{entries} * sizeof(Completion), kPageSize);
}

}  // namespace pinring::rdma
