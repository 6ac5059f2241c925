// The shared-memory format of a pinring queue. Client (ringlib) and daemon (ringd) both compile
// against this header and nothing else defines the layout. See docs/ring-format.md.
//
// One queue = one sealed memfd, mapped MAP_SHARED by both sides:
//
//   offset 0            QueueHeader (one 4 KiB page)
//     line 0            QueueLayout   written once by the client; ringd validates it against its own
//                                     computation from the CreateQueue message and never re-reads it
//     line 1            sq_tail       producer = client   (untrusted in ringd)
//     line 2            sq_head       producer = ringd
//     line 3            cq_tail       producer = ringd
//     line 4            cq_head       producer = client   (untrusted in ringd)
//     line 5            sq_flags      producer = ringd    (kSqNeedWakeup)
//     line 6            cq_flags      producer = client   (kCqWaiting)
//     line 7            queue_error   producer = ringd    (why ringd stopped serving the queue)
//   sq_offset           sq_entries x Descriptor (64 B each)
//   cq_offset           cq_entries x Completion (32 B each)
//
// Indices are free-running uint32 counters; a slot is `index & (entries - 1)`. Each index lives on
// its own cache line so the two sides never write the same line (no false sharing). Everything the
// client can write is untrusted in ringd: ringd keeps its own sizes, masks every index and bounds
// every difference of indices by the ring size.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

namespace pinring {

inline constexpr std::size_t kCacheLineSize = 64;
inline constexpr std::size_t kPageSize = 4096;

inline constexpr std::uint32_t kQueueMagic = 0x51524e50;  // "PNRQ" in little-endian memory
inline constexpr std::uint16_t kRingFormatVersion = 1;

// Ring sizes are powers of two within these bounds; ringd may impose tighter limits (HelloReply).
inline constexpr std::uint32_t kMinRingEntries = 2;
inline constexpr std::uint32_t kMaxRingEntries = 1u << 16;

// ---------------------------------------------------------------------------------------------
// Descriptor: one operation, written by the client into the submission ring.
// ---------------------------------------------------------------------------------------------
enum class Opcode : std::uint8_t {
  kNop = 0,
  kCopy = 1,      // src_region[src_offset, +length) -> dst_region[dst_offset, +length)
  kChecksum = 2,  // FNV-1a 64 of src_region[src_offset, +length) as the backend (device) sees it
  kFill = 3,      // dst_region[dst_offset, +length) = byte (value & 0xff), or 64-bit pattern
};
// Opcodes every transport executes; the shm transport rejects everything from here on.
inline constexpr std::uint8_t kOpcodeCount = 4;

// rdma transport only (raw values, outside Opcode so that switches over Opcode stay exhaustive;
// the shm transport rejects them with kBadOpcode: they are >= kOpcodeCount). The remote side is a
// grant token (rdma_wire.h GrantToken): its region handle field = the grant handle, `value` = the
// grant key, `reserved2` = the node (IPv4 << 16 | rdma port of the ringd that granted it; 0 = the
// client's own ringd). No flags.
// src_region[src_offset, +length) -> grant dst_region[dst_offset, +length)
inline constexpr std::uint8_t kOpRemoteWrite = 4;
// grant src_region[src_offset, +length) -> dst_region[dst_offset, +length)
inline constexpr std::uint8_t kOpRemoteRead = 5;
// Opcodes the rdma transport executes.
inline constexpr std::uint8_t kRdmaOpcodeCount = 6;
static_assert(kOpRemoteWrite == kOpcodeCount && kOpRemoteRead + 1 == kRdmaOpcodeCount);

// Descriptor flags. Any bit outside kDescFlagsKnown is rejected with kBadFlags.
inline constexpr std::uint8_t kDescFlagFillPattern64 = 1u << 0;  // FILL with 8-byte `value`;
                                                                 // needs 8-byte alignment
inline constexpr std::uint8_t kDescFlagFence = 1u << 1;  // start after all earlier ops finish
inline constexpr std::uint8_t kDescFlagsKnown = kDescFlagFillPattern64 | kDescFlagFence;

struct Descriptor {
  std::uint64_t user_data;   // echoed untouched in the completion
  std::uint8_t opcode;       // Opcode
  std::uint8_t flags;        // kDescFlag*
  std::uint16_t reserved0;   // must be 0
  std::uint32_t src_region;  // region handle granted by ringd (COPY, CHECKSUM)
  std::uint32_t dst_region;  // region handle (COPY, FILL)
  std::uint32_t reserved1;   // must be 0
  std::uint64_t src_offset;
  std::uint64_t dst_offset;
  std::uint64_t length;  // bytes
  std::uint64_t value;   // FILL byte or pattern
  std::uint64_t reserved2;  // must be 0
};
static_assert(sizeof(Descriptor) == 64, "a descriptor is one cache line");
static_assert(std::is_trivially_copyable_v<Descriptor>);
static_assert(offsetof(Descriptor, opcode) == 8);
static_assert(offsetof(Descriptor, src_region) == 12);
static_assert(offsetof(Descriptor, dst_region) == 16);
static_assert(offsetof(Descriptor, src_offset) == 24);
static_assert(offsetof(Descriptor, dst_offset) == 32);
static_assert(offsetof(Descriptor, length) == 40);
static_assert(offsetof(Descriptor, value) == 48);
static_assert(offsetof(Descriptor, reserved2) == 56);

// ---------------------------------------------------------------------------------------------
// Completion: written by ringd into the completion ring, one per descriptor, in submission order.
// ---------------------------------------------------------------------------------------------
enum class CompletionStatus : std::int32_t {
  kOk = 0,
  kBadOpcode = 1,       // opcode >= kOpcodeCount
  kUnknownRegion = 2,   // handle not registered by this client
  kOutOfBounds = 3,     // offset + length outside the region, or overflowing 64 bits
  kBadFlags = 4,        // unknown flag bit, or a flag that does not apply to the opcode
  kMisaligned = 5,      // kDescFlagFillPattern64 with offset or length not a multiple of 8
  kBadReserved = 6,     // a reserved field is not zero
  kReadOnlyRegion = 7,  // COPY/FILL into a region registered device-read-only
  kOverlap = 8,         // COPY whose source and destination overlap in the same region
  kDeviceError = 9,     // the backend failed (e.g. a verbs work completion error)
  kShuttingDown = 10,   // ringd is stopping; the descriptor was not executed
  // The region's memory could not be read or written: its memfd lost pages the kernel could not
  // give back (a hole punched into an MFD_HUGETLB memfd with no free huge page, or a memory
  // error). The region is unusable from now on: deregister it.
  kRegionFault = 11,
};
inline constexpr std::int32_t kCompletionStatusCount = 12;

// Human-readable name of a status, for logs and examples ("ok", "bad-opcode", ...).
constexpr const char* CompletionStatusName(CompletionStatus s) {
  switch (s) {
    case CompletionStatus::kOk: return "ok";
    case CompletionStatus::kBadOpcode: return "bad-opcode";
    case CompletionStatus::kUnknownRegion: return "unknown-region";
    case CompletionStatus::kOutOfBounds: return "out-of-bounds";
    case CompletionStatus::kBadFlags: return "bad-flags";
    case CompletionStatus::kMisaligned: return "misaligned";
    case CompletionStatus::kBadReserved: return "bad-reserved";
    case CompletionStatus::kReadOnlyRegion: return "read-only-region";
    case CompletionStatus::kOverlap: return "overlap";
    case CompletionStatus::kDeviceError: return "device-error";
    case CompletionStatus::kShuttingDown: return "shutting-down";
    case CompletionStatus::kRegionFault: return "region-fault";
  }
  return "unknown-status";
}

struct Completion {
  std::uint64_t user_data;  // copied from the descriptor
  std::uint64_t result;     // CHECKSUM: the checksum; COPY/FILL: bytes written; NOP: 0
  std::int32_t status;      // CompletionStatus
  std::uint32_t reserved0;
  std::uint64_t reserved1;
};
static_assert(sizeof(Completion) == 32, "two completions per cache line");
static_assert(std::is_trivially_copyable_v<Completion>);
static_assert(offsetof(Completion, status) == 16);

// ---------------------------------------------------------------------------------------------
// Queue header
// ---------------------------------------------------------------------------------------------
// sq_flags bits (ringd -> client).
inline constexpr std::uint32_t kSqNeedWakeup = 1u << 0;  // ringd sleeps: write the doorbell eventfd
// cq_flags bits (client -> ringd).
inline constexpr std::uint32_t kCqWaiting = 1u << 0;  // client sleeps: signal the completion eventfd

// Why ringd stopped serving a queue (queue_error). 0 = healthy.
enum class QueueError : std::uint32_t {
  kNone = 0,
  kSqIndexCorrupt = 1,  // sq_tail - sq_head > sq_entries: the client broke the protocol
  kCqIndexCorrupt = 2,  // cq_tail - cq_head > cq_entries
  kDaemonStopping = 3,
  // The queue memfd lost pages ringd could not fault back in (see kRegionFault): ringd stopped
  // reading and writing it.
  kQueueMemoryFault = 4,
};

struct QueueLayout {
  std::uint32_t magic;    // kQueueMagic
  std::uint16_t version;  // kRingFormatVersion
  std::uint16_t reserved0;
  std::uint32_t sq_entries;  // power of two
  std::uint32_t cq_entries;  // power of two
  std::uint64_t sq_offset;   // from the start of the mapping
  std::uint64_t cq_offset;
  std::uint64_t total_size;  // bytes; the memfd is exactly this large and sealed against shrinking
};
static_assert(sizeof(QueueLayout) <= kCacheLineSize);

// One index or flag word alone on a cache line.
struct alignas(kCacheLineSize) PaddedAtomic {
  std::atomic<std::uint32_t> value;
};
static_assert(sizeof(PaddedAtomic) == kCacheLineSize);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "indices are shared between processes: they must be lock-free");

struct alignas(kPageSize) QueueHeader {
  alignas(kCacheLineSize) QueueLayout layout;
  PaddedAtomic sq_tail;
  PaddedAtomic sq_head;
  PaddedAtomic cq_tail;
  PaddedAtomic cq_head;
  PaddedAtomic sq_flags;
  PaddedAtomic cq_flags;
  PaddedAtomic queue_error;
};
static_assert(sizeof(QueueHeader) == kPageSize);
static_assert(offsetof(QueueHeader, sq_tail) == 1 * kCacheLineSize);
static_assert(offsetof(QueueHeader, sq_head) == 2 * kCacheLineSize);
static_assert(offsetof(QueueHeader, cq_tail) == 3 * kCacheLineSize);
static_assert(offsetof(QueueHeader, cq_head) == 4 * kCacheLineSize);
static_assert(offsetof(QueueHeader, sq_flags) == 5 * kCacheLineSize);
static_assert(offsetof(QueueHeader, cq_flags) == 6 * kCacheLineSize);
static_assert(offsetof(QueueHeader, queue_error) == 7 * kCacheLineSize);

constexpr bool IsPowerOfTwo(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
constexpr std::uint64_t RoundUp(std::uint64_t v, std::uint64_t to) { return (v + to - 1) / to * to; }

// True when `entries` is an acceptable ring size for this format.
constexpr bool IsValidRingSize(std::uint32_t entries) {
  return IsPowerOfTwo(entries) && entries >= kMinRingEntries && entries <= kMaxRingEntries;
}

// The one layout both sides compute from the two ring sizes. REQUIRES: both sizes valid.
constexpr QueueLayout ComputeQueueLayout(std::uint32_t sq_entries, std::uint32_t cq_entries) {
  QueueLayout l{};
  l.magic = kQueueMagic;
  l.version = kRingFormatVersion;
  l.sq_entries = sq_entries;
  l.cq_entries = cq_entries;
  l.sq_offset = sizeof(QueueHeader);
  l.cq_offset = RoundUp(l.sq_offset + std::uint64_t{sq_entries} * sizeof(Descriptor), kPageSize);
  l.total_size = RoundUp(l.cq_offset + std::uint64_t{cq_entries} * sizeof(Completion), kPageSize);
  return l;
}
static_assert(ComputeQueueLayout(2, 2).total_size == 3 * kPageSize);
static_assert(ComputeQueueLayout(kMaxRingEntries, kMaxRingEntries).total_size ==
              kPageSize + (1u << 16) * 64 + (1u << 16) * 32);

// The checksum CHECKSUM computes: FNV-1a 64. Byte-at-a-time and alignment-free, so a client can
// compute the expected value of any range itself.
inline constexpr std::uint64_t kFnv1a64Seed = 0xcbf29ce484222325ull;
inline std::uint64_t Fnv1a64(std::span<const std::byte> bytes, std::uint64_t h = kFnv1a64Seed) {
  for (std::byte b : bytes) {
    h ^= static_cast<std::uint8_t>(b);
    h *= 0x100000001b3ull;
  }
  return h;
}

// What FILL writes over `out`: value's low byte in every byte, or (kDescFlagFillPattern64) the
// 8-byte little-endian `value` repeated; a pattern fill's offset and length are multiples of 8
// (kMisaligned otherwise), so every 8-byte step starts on the pattern's phase.
inline void FillPattern(std::span<std::byte> out, std::uint64_t value, bool pattern64) {
  if (!pattern64) {
    std::memset(out.data(), static_cast<int>(value & 0xff), out.size());
    return;
  }
  for (std::size_t i = 0; i + 8 <= out.size(); i += 8) std::memcpy(out.data() + i, &value, 8);
}

}  // namespace pinring
