// The control protocol between ringlib and ringd over a Unix SOCK_SEQPACKET socket.
//
// Every message is one datagram: a 16-byte MessageHeader followed by a fixed-size body whose type
// the header names (StatsReply alone has a variable text body). File descriptors ride along as
// SCM_RIGHTS; each message type carries an exact number of them. The client speaks first (Hello),
// then sends requests; ringd answers each request with its *Reply, echoing `seq`. ringd may also
// send a ShutdownNotice at any time.
//
// ringd treats every byte and fd a client sends as hostile: ParseHeader checks magic, version,
// type, exact length and fd count before any body field is looked at, and each handler validates
// body fields against ringd's own limits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "pinring/wire_types.h"

namespace pinring::wire {

inline constexpr std::uint32_t kMagic = 0x57524e50;  // "PNRW" in little-endian memory
inline constexpr std::uint16_t kVersion = 1;
// Largest datagram either side sends or accepts (StatsReply is the only one near this bound).
inline constexpr std::size_t kMaxMessageSize = 64 * 1024;
inline constexpr std::size_t kMaxFdsPerMessage = 3;
inline constexpr std::size_t kNameSize = 64;
inline constexpr std::size_t kErrorTextSize = 192;

enum class MessageType : std::uint16_t {
  kHello = 1,
  kHelloReply = 2,
  kCreateQueue = 3,
  kCreateQueueReply = 4,
  kDestroyQueue = 5,
  kDestroyQueueReply = 6,
  kRegisterRegion = 7,
  kRegisterRegionReply = 8,
  kDeregisterRegion = 9,
  kDeregisterRegionReply = 10,
  kShutdownNotice = 11,  // ringd -> client, unsolicited
  kStatsRequest = 12,
  kStatsReply = 13,  // variable-length JSON text body
  // The StatsReply for text too large for a datagram: the JSON is in a sealed memfd (1 fd).
  kStatsReplyMemfd = 14,
};

struct MessageHeader {
  std::uint32_t magic;    // kMagic
  std::uint16_t version;  // kVersion
  std::uint16_t type;     // MessageType
  std::uint32_t length;   // whole datagram, header included
  std::uint32_t seq;      // chosen by the requester, echoed in the reply
};
static_assert(sizeof(MessageHeader) == 16);

// Every reply starts with this. `code` is an absl::StatusCode; `text` is NUL-terminated.
struct ReplyStatus {
  std::int32_t code;
  std::uint32_t reserved;
  char text[kErrorTextSize];
};
static_assert(sizeof(ReplyStatus) == 200);

// Region flags.
inline constexpr std::uint32_t kRegionHugePages = 1u << 0;  // the memfd is MFD_HUGETLB
inline constexpr std::uint32_t kRegionFlagsKnown = kRegionHugePages;

// --- bodies ---------------------------------------------------------------------------------
struct Hello {  // fds: 0
  std::uint16_t min_version;
  std::uint16_t max_version;
  std::uint32_t reserved;
  char name[kNameSize];  // client's self-description, NUL-terminated, for ringctl only
};

// struct Limits: pinring/wire_types.h (the client API shows it).

// HelloReply::default_fork_mode_set when ringd was configured with --default_fork_mode.
inline constexpr std::uint8_t kDefaultForkModeSet = 1;

struct HelloReply {  // fds: 0
  ReplyStatus status;
  std::uint16_t version;
  // ringd's --default_fork_mode (a pinring::ForkMode), the last layer of a client's region default
  // (docs/fork-modes.md). Meaningful only when default_fork_mode_set == kDefaultForkModeSet; both
  // 0 when ringd has none configured (and from a ringd that predates the field: it sent 0s here).
  std::uint8_t default_fork_mode;
  std::uint8_t default_fork_mode_set;
  std::uint32_t client_id;
  Limits limits;
  char backend[16];  // "cpu" or "verbs", NUL-terminated
  char device[32];   // RDMA device name, or ""
};

struct CreateQueue {  // fds: [queue memfd (sealed), doorbell eventfd, completion eventfd]
  std::uint32_t sq_entries;
  std::uint32_t cq_entries;
  std::uint8_t doorbell_mode;    // DoorbellMode
  std::uint8_t completion_wait;  // CompletionWait
  std::uint16_t reserved;
  std::uint32_t adaptive_poll_us;  // kAdaptive only; 0 = ringd's default
};

struct CreateQueueReply {  // fds: 0
  ReplyStatus status;
  std::uint32_t queue_id;
  std::uint32_t reserved;
};

struct DestroyQueue {  // fds: 0
  std::uint32_t queue_id;
  std::uint32_t reserved;
};

struct DestroyQueueReply {  // fds: 0
  ReplyStatus status;
};

struct RegisterRegion {  // fds: [region memfd (sealed against shrinking)]
  std::uint64_t size;     // bytes; the memfd is at least this large
  std::uint8_t fork_mode;  // pinring::ForkMode
  std::uint8_t reserved0;
  std::uint16_t reserved1;
  std::uint32_t flags;  // kRegion*
};

struct RegisterRegionReply {  // fds: 0
  ReplyStatus status;
  std::uint32_t handle;  // local to this client; used in Descriptor::src_region/dst_region
  std::uint32_t reserved;
  std::uint64_t pinned_bytes;  // what this client now has pinned in total
};

struct DeregisterRegion {  // fds: 0
  std::uint32_t handle;
  std::uint32_t reserved;
};

struct DeregisterRegionReply {  // fds: 0
  ReplyStatus status;
};

struct ShutdownNotice {  // fds: 0
  ReplyStatus reason;
};

struct StatsRequest {  // fds: 0
  std::uint32_t flags;
  std::uint32_t reserved;
};
// StatsReply: ReplyStatus followed by up to kMaxMessageSize - 216 bytes of JSON text.
inline constexpr std::size_t kStatsReplyFixedSize = sizeof(MessageHeader) + sizeof(ReplyStatus);
// Largest stats text a client accepts through kStatsReplyMemfd (sanity bound on `size`).
inline constexpr std::uint64_t kMaxStatsTextSize = 64ull << 20;

struct StatsReplyMemfd {  // fds: [memfd holding `size` bytes of JSON, sealed F_SEAL_WRITE]
  ReplyStatus status;
  std::uint64_t size;
};

// --- per-type facts -------------------------------------------------------------------------
struct TypeInfo {
  std::size_t body_size;  // exact, except StatsReply (minimum)
  std::size_t fds;        // exact
  bool variable;          // body may be longer than body_size
};

constexpr bool IsKnownType(std::uint16_t t) { return t >= 1 && t <= 14; }

constexpr TypeInfo InfoFor(MessageType t) {
  switch (t) {
    case MessageType::kHello: return {sizeof(Hello), 0, false};
    case MessageType::kHelloReply: return {sizeof(HelloReply), 0, false};
    case MessageType::kCreateQueue: return {sizeof(CreateQueue), 3, false};
    case MessageType::kCreateQueueReply: return {sizeof(CreateQueueReply), 0, false};
    case MessageType::kDestroyQueue: return {sizeof(DestroyQueue), 0, false};
    case MessageType::kDestroyQueueReply: return {sizeof(DestroyQueueReply), 0, false};
    case MessageType::kRegisterRegion: return {sizeof(RegisterRegion), 1, false};
    case MessageType::kRegisterRegionReply: return {sizeof(RegisterRegionReply), 0, false};
    case MessageType::kDeregisterRegion: return {sizeof(DeregisterRegion), 0, false};
    case MessageType::kDeregisterRegionReply: return {sizeof(DeregisterRegionReply), 0, false};
    case MessageType::kShutdownNotice: return {sizeof(ShutdownNotice), 0, false};
    case MessageType::kStatsRequest: return {sizeof(StatsRequest), 0, false};
    case MessageType::kStatsReply: return {sizeof(ReplyStatus), 0, true};
    case MessageType::kStatsReplyMemfd: return {sizeof(StatsReplyMemfd), 1, false};
  }
  return {0, 0, false};
}

// Validates the framing of a received datagram: size, magic, version, known type, exact length
// for the type, exact fd count. Untrusted input: nothing in the body is looked at here.
// Returns the header on success, InvalidArgument naming the first problem otherwise.
inline absl::StatusOr<MessageHeader> ParseHeader(std::span<const std::byte> datagram,
                                                 std::size_t fds_received) {
  if (datagram.size() < sizeof(MessageHeader)) {
    return absl::InvalidArgumentError(
        absl::StrCat("truncated message: ", datagram.size(), " bytes, header needs ",
                     sizeof(MessageHeader)));
  }
  if (datagram.size() > kMaxMessageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("oversized message: ", datagram.size(), " bytes, limit ", kMaxMessageSize));
  }
  MessageHeader h;
  std::memcpy(&h, datagram.data(), sizeof h);
  if (h.magic != kMagic) {
    return absl::InvalidArgumentError(absl::StrCat("bad magic 0x", absl::Hex(h.magic),
                                                   ": not a pinring peer"));
  }
  if (h.version != kVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("protocol version ", h.version, " unsupported (this side speaks ", kVersion,
                     ")"));
  }
  if (!IsKnownType(h.type)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown message type ", h.type));
  }
  if (h.length != datagram.size()) {
    return absl::InvalidArgumentError(absl::StrCat("length field ", h.length, " disagrees with ",
                                                   datagram.size(), " bytes received"));
  }
  const TypeInfo info = InfoFor(static_cast<MessageType>(h.type));
  const std::size_t body = datagram.size() - sizeof(MessageHeader);
  if (info.variable ? body < info.body_size : body != info.body_size) {
    return absl::InvalidArgumentError(absl::StrCat("message type ", h.type, " has a ", body,
                                                   "-byte body, expected ", info.body_size));
  }
  if (fds_received != info.fds) {
    return absl::InvalidArgumentError(absl::StrCat("message type ", h.type, " carried ",
                                                   fds_received, " fds, expected ", info.fds));
  }
  return h;
}

// Copies the fixed body of a datagram already accepted by ParseHeader.
template <typename Body>
Body BodyOf(std::span<const std::byte> datagram) {
  static_assert(std::is_trivially_copyable_v<Body>);
  Body b;
  std::memcpy(&b, datagram.data() + sizeof(MessageHeader), sizeof(Body));
  return b;
}

// A header + body pair laid out as one datagram.
template <typename Body>
struct Message {
  MessageHeader header;
  Body body;
};

template <typename Body>
Message<Body> MakeMessage(MessageType type, std::uint32_t seq, const Body& body) {
  static_assert(std::is_trivially_copyable_v<Body>);
  static_assert(sizeof(Message<Body>) == sizeof(MessageHeader) + sizeof(Body),
                "bodies must not introduce padding after the header");
  Message<Body> m{};
  m.header = {kMagic, kVersion, static_cast<std::uint16_t>(type),
              static_cast<std::uint32_t>(sizeof(Message<Body>)), seq};
  m.body = body;
  return m;
}

// True when a fixed char array holds a NUL within its bounds (untrusted strings).
template <std::size_t N>
bool IsTerminated(const char (&s)[N]) {
  return std::memchr(s, '\0', N) != nullptr;
}

// Copies `text` into a fixed array, truncating and always NUL-terminating.
template <std::size_t N>
void SetText(char (&dst)[N], absl::string_view text) {
  const std::size_t n = text.size() < N - 1 ? text.size() : N - 1;
  // An empty string_view may have data() == nullptr, and memcpy from nullptr is UB even for 0
  // bytes (UBSan aborts ringd on an empty backend device name / OK status text).
  if (n != 0) std::memcpy(dst, text.data(), n);
  std::memset(dst + n, 0, N - n);
}

inline ReplyStatus ToReplyStatus(const absl::Status& s) {
  ReplyStatus r{};
  r.code = static_cast<std::int32_t>(s.code());
  SetText(r.text, s.message());
  return r;
}

// The status a peer sent. Untrusted: an out-of-range code becomes kUnknown, the text is bounded.
inline absl::Status FromReplyStatus(const ReplyStatus& r) {
  if (r.code == 0) return absl::OkStatus();
  const auto code = (r.code > 0 && r.code <= 16) ? static_cast<absl::StatusCode>(r.code)
                                                 : absl::StatusCode::kUnknown;
  const std::size_t len = strnlen(r.text, sizeof r.text);
  return absl::Status(code, absl::string_view(r.text, len));
}

}  // namespace pinring::wire
