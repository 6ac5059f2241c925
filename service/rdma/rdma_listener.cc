#include "service/rdma/rdma_listener.h"

#include "service/rdma/connect_request.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "pinring/private_region.h"
#include "pinring/rdma_channel.h"
#include "pinring/rdma_wire.h"
#include "pinring/status.h"
#include "pinring/verbs_device.h"
#include "service/rdma/rdma_executor.h"

namespace pinring::ringd {
namespace {

using rdma::ControlMessage;
using rdma::ControlType;
using rdma::RdmaChannel;

constexpr std::uint32_t kSlotBytes = 128;
constexpr std::uint32_t kSendSlots = 16;
// Doorbells and requests the client may have in flight: its send slots, plus slack.
constexpr std::uint32_t kRecvDepth = 32 + rdma::kControlSlack;
constexpr std::uint32_t kSendDepth = 64;
static_assert(kSendDepth >= 3 * kSendSlots + 1, "unsignaled completion WRITEs: see Execute");
constexpr std::uint64_t kRecvTag = 1ull << 62;
constexpr std::uint64_t kSendTag = 1ull << 61;
constexpr std::uint64_t kOpTag = 1ull << 60;

absl::Status SetNonBlocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return pinring::LastErrnoStatus("fcntl");
  return absl::OkStatus();
}

struct Device {
  std::unique_ptr<VerbsDevice> dev;
  ibv_comp_channel* comp = nullptr;
};

static_assert(kBounceBytes == rdma::kPeerChunkBytes, "one peer chunk fits one bounce buffer");

// A grant (exported region): the owner connection and its region handle, and the capability key.
struct Grant {
  std::uint32_t conn_id = 0;
  std::uint32_t region_handle = 0;
  std::uint64_t key = 0;
};

std::uint64_t RandomKey() {
  std::uint64_t k = 0;
  while (k == 0) {
    if (getrandom(&k, sizeof k, 0) != static_cast<ssize_t>(sizeof k)) k = 0;
  }
  return k;
}

}  // namespace

// One client connection. Owned by the listener thread only.
struct Connection final : RemoteOps {
  RdmaListener::Impl* impl = nullptr;
  bool peer = false;  // another ringd forwarding REMOTE ops (kConnectFlagPeer): no rings
  std::uint32_t id = 0;
  Device* device = nullptr;
  std::unique_ptr<RdmaChannel> ch;
  rdma::ConnectRequest req{};  // validated copy; never re-read from the client
  std::uint32_t sq_mask = 0, cq_mask = 0;
  std::unique_ptr<PrivateRegion> mem;  // recv slots | send slots | sq staging | cq staging | bounce
  std::uint64_t send_off = 0, sq_off = 0, cq_off = 0, bounce_off = 0;
  std::vector<bool> send_busy;
  std::uint32_t head = 0;     // next descriptor ringd reads (ringd's own copy)
  std::uint32_t tail = 0;     // highest validated doorbell tail
  std::uint32_t cq_tail = 0;  // completions written
  std::uint32_t idle_doorbells = 0;
  std::uint32_t next_handle = 1;
  std::map<std::uint32_t, GrantedRegion> regions;
  std::vector<std::pair<ControlMessage, std::uint32_t>> inbox;  // received, not yet handled
  std::uint64_t next_op = 0;
  absl::Duration op_timeout;
  bool established = false;  // the RTU arrived (RDMA_CM_EVENT_ESTABLISHED)
  absl::Time accepted_at;     // when ringd sent its REP: the handshake timeout runs from here
  bool dead = false;        // transport gone: destroy at the end of the loop iteration
  bool qp_broken = false;   // a work completion failed: the QP is in ERROR
  absl::Status error;

  // RemoteOps: one synchronous RDMA op against the client's memory through the bounce buffer.
  absl::Status Read(std::uint64_t remote_addr, std::uint32_t rkey, std::uint32_t len) override {
    return RunOp(IBV_WR_RDMA_READ, bounce_off, len, remote_addr, rkey);
  }
  absl::Status Write(std::uint64_t remote_addr, std::uint32_t rkey, std::uint32_t len) override {
    return RunOp(IBV_WR_RDMA_WRITE, bounce_off, len, remote_addr, rkey);
  }
  std::byte* bounce() override { return static_cast<std::byte*>(mem->data()) + bounce_off; }
  std::uint32_t bounce_size() override { return kBounceBytes; }
  const GrantedRegion* Lookup(std::uint32_t handle) override {
    auto it = regions.find(handle);
    return it == regions.end() ? nullptr : &it->second;
  }

  CompletionStatus Remote(const Descriptor& d, std::uint64_t* result) override;

  absl::Status RunOp(ibv_wr_opcode op, std::uint64_t local_off, std::uint32_t len,
                     std::uint64_t remote_addr, std::uint32_t rkey) {
    return RunOpMr(op, mem->mr(), local_off, len, remote_addr, rkey);
  }
  // The same with a local buffer of another MR of the same PD (another connection's bounce).
  absl::Status RunOpMr(ibv_wr_opcode op, const MemoryRegion& mr, std::uint64_t local_off,
                       std::uint32_t len, std::uint64_t remote_addr, std::uint32_t rkey);
  // Posts an unsignaled RDMA WRITE and does not wait: a later signaled work request on this QP
  // (the notification SEND) retires it, and a failure still completes, with an error, into
  // HandleWc. For completions only: RC ordering delivers its data before the later SEND.
  absl::Status PostWriteNoWait(std::uint64_t local_off, std::uint32_t len,
                               std::uint64_t remote_addr, std::uint32_t rkey) {
    if (qp_broken) return error;
    return ch->PostWrite(mem->mr(), local_off, len, remote_addr, rkey, kOpTag | next_op++,
                         /*signaled=*/false);
  }
  // Handles one work completion that is not the op being waited for.
  void HandleWc(const ibv_wc& wc);
  absl::Status PollAll();
  absl::Status Send(const ControlMessage& m);
};

void Connection::HandleWc(const ibv_wc& wc) {
  if (wc.status != IBV_WC_SUCCESS) {
    qp_broken = true;
    if (error.ok()) {
      error = absl::UnavailableError(absl::StrCat("work completion failed: ",
                                                  ibv_wc_status_str(wc.status)));
    }
    return;
  }
  if (wc.wr_id & kSendTag) {
    send_busy[wc.wr_id & 0xffff] = false;
  } else if (wc.wr_id & kRecvTag) {
    const auto slot = static_cast<std::uint32_t>(wc.wr_id & 0xffffffff);
    ControlMessage m{};
    // Untrusted: copy at most one message's worth; IsWellFormed checks the received length.
    std::memcpy(&m, static_cast<const std::byte*>(mem->data()) + std::uint64_t{slot} * kSlotBytes,
                std::min<std::size_t>(wc.byte_len, sizeof m));
    inbox.emplace_back(m, wc.byte_len);
    if (absl::Status s = ch->PostRecv(mem->mr(), std::uint64_t{slot} * kSlotBytes, kSlotBytes,
                                      kRecvTag | slot);
        !s.ok() && error.ok()) {
      error = s;
    }
  }
}

absl::Status Connection::PollAll() {
  ibv_wc wc[16];
  for (;;) {
    PINRING_ASSIGN_OR_RETURN(int n, ch->Poll(absl::MakeSpan(wc)));
    for (int i = 0; i < n; ++i) HandleWc(wc[i]);
    if (n < 16) return error;
  }
}

absl::Status Connection::RunOpMr(ibv_wr_opcode op, const MemoryRegion& mr,
                                 std::uint64_t local_off, std::uint32_t len,
                                 std::uint64_t remote_addr, std::uint32_t rkey) {
  if (qp_broken) return error;
  const std::uint64_t wr_id = kOpTag | next_op++;
  absl::Status st = op == IBV_WR_RDMA_READ
                        ? ch->PostRead(mr, local_off, len, remote_addr, rkey, wr_id, true)
                        : ch->PostWrite(mr, local_off, len, remote_addr, rkey, wr_id, true);
  PINRING_RETURN_IF_ERROR(st);
  const absl::Time deadline = absl::Now() + op_timeout;
  ibv_wc wc[8];
  for (std::uint32_t spins = 0;; ++spins) {
    PINRING_ASSIGN_OR_RETURN(int n, ch->Poll(absl::MakeSpan(wc)));
    bool mine_done = false;
    absl::Status mine;
    for (int i = 0; i < n; ++i) {
      if (wc[i].wr_id != wr_id) {
        // Every other completion of the batch is handled, including those polled after ours:
        // returning at ours dropped them (a doorbell's receive then never came back).
        HandleWc(wc[i]);
        continue;
      }
      mine_done = true;
      if (wc[i].status != IBV_WC_SUCCESS) {
        qp_broken = true;
        // A failed RDMA op against the client: its rkey was revoked, its MR deregistered, or
        // the range lied about. The QP is in ERROR now.
        error = absl::FailedPreconditionError(absl::StrCat(
            op == IBV_WR_RDMA_READ ? "RDMA READ" : "RDMA WRITE", " of ", len, " bytes at 0x",
            absl::Hex(remote_addr), " rkey 0x", absl::Hex(rkey),
            " failed: ", ibv_wc_status_str(wc[i].status)));
        mine = error;
      }
    }
    if (mine_done) return mine;
    if (qp_broken) return error;
    if ((spins & 255) == 255) {
      if (absl::Now() > deadline) {
        qp_broken = true;
        error = absl::DeadlineExceededError("RDMA op timed out");
        return error;
      }
      sched_yield();  // rxe does the work in a kernel thread that needs this CPU
    }
  }
}

absl::Status Connection::Send(const ControlMessage& m) {
  const absl::Time deadline = absl::Now() + op_timeout;
  for (;;) {
    for (std::uint32_t i = 0; i < kSendSlots; ++i) {
      if (send_busy[i]) continue;
      const std::uint64_t off = send_off + std::uint64_t{i} * kSlotBytes;
      std::memcpy(static_cast<std::byte*>(mem->data()) + off, &m, sizeof m);
      PINRING_RETURN_IF_ERROR(ch->PostSend(mem->mr(), off, sizeof m, kSendTag | i, true));
      send_busy[i] = true;
      return absl::OkStatus();
    }
    PINRING_RETURN_IF_ERROR(PollAll());
    if (absl::Now() > deadline) {
      qp_broken = true;
      return error = absl::DeadlineExceededError("client stopped receiving (no send slot)");
    }
    sched_yield();
  }
}

// ringd's own connection to another ringd (kConnectFlagPeer), made on demand for the first REMOTE
// op naming that node and dropped on any failure (the next op reconnects). Synchronous: one
// PeerOp in flight. Memory: receive slots | send slot | the chunk buffer the peer reads/writes.
struct PeerLink {
  static constexpr std::uint32_t kRecv = 4;
  std::uint64_t node = 0;
  std::unique_ptr<RdmaChannel> ch;
  std::unique_ptr<PrivateRegion> mem;
  std::uint64_t send_off = kRecv * kSlotBytes;
  std::uint64_t buf_off = RoundUp((kRecv + 1) * kSlotBytes, kPageSize);
  std::uint32_t seq = 1;
  std::byte* buf() { return static_cast<std::byte*>(mem->data()) + buf_off; }

  ~PeerLink() {
    if (ch != nullptr) {
      ch->Disconnect();
      ch->DestroyQp();
    }
    mem.reset();
    ch.reset();
  }

  // One chunk: kPeerWrite sends buf()[0, len) into the grant, kPeerRead fills buf()[0, len).
  // Returns the peer's status, or an error when the link failed (the caller drops it).
  absl::StatusOr<CompletionStatus> Request(std::uint32_t direction, std::uint32_t handle,
                                           std::uint64_t key, std::uint64_t offset,
                                           std::uint32_t len, absl::Duration timeout) {
    rdma::PeerOp op{};
    op.magic = rdma::kRdmaMagic;
    op.type = static_cast<std::uint16_t>(ControlType::kPeerOp);
    op.seq = seq++;
    op.key = key;
    op.offset = offset;
    op.buf_addr = reinterpret_cast<std::uint64_t>(buf());
    op.length = len;
    op.buf_rkey = mem->mr().rkey();
    op.handle = handle;
    op.direction = direction;
    std::memcpy(static_cast<std::byte*>(mem->data()) + send_off, &op, sizeof op);
    PINRING_RETURN_IF_ERROR(ch->PostSend(mem->mr(), send_off, sizeof op, kSendTag, true));
    const absl::Time deadline = absl::Now() + timeout;
    ibv_wc wc[8];
    for (std::uint32_t spins = 0;; ++spins) {
      PINRING_ASSIGN_OR_RETURN(int n, ch->Poll(absl::MakeSpan(wc)));
      for (int i = 0; i < n; ++i) {
        if (wc[i].status != IBV_WC_SUCCESS) {
          return absl::UnavailableError(absl::StrCat("peer link work completion failed: ",
                                                     ibv_wc_status_str(wc[i].status)));
        }
        if ((wc[i].wr_id & kRecvTag) == 0) continue;  // our send completed
        const auto slot = static_cast<std::uint32_t>(wc[i].wr_id & 0xffff);
        // Untrusted: the peer ringd. A message only when IsWellFormed says so; slot < kRecv is
        // ours (the wr_id comes from our own PostRecv).
        ControlMessage m{};
        std::memcpy(&m, static_cast<const std::byte*>(mem->data()) + slot * kSlotBytes,
                    std::min<std::size_t>(wc[i].byte_len, sizeof m));
        PINRING_RETURN_IF_ERROR(
            ch->PostRecv(mem->mr(), slot * kSlotBytes, kSlotBytes, kRecvTag | slot));
        if (!rdma::IsWellFormed(m, wc[i].byte_len) ||
            m.type != static_cast<std::uint16_t>(ControlType::kPeerOpReply)) {
          return absl::DataLossError("peer ringd sent a malformed reply");
        }
        if (m.seq != op.seq) continue;  // a stale reply (cannot happen: one in flight)
        // Untrusted status: only the ones a grant check or the transfer can produce.
        const auto st = static_cast<CompletionStatus>(m.code);
        if (st == CompletionStatus::kOk && m.value != len) {
          return absl::DataLossError("peer ringd reported a short transfer");
        }
        if (st != CompletionStatus::kOk && st != CompletionStatus::kUnknownRegion &&
            st != CompletionStatus::kOutOfBounds && st != CompletionStatus::kReadOnlyRegion &&
            st != CompletionStatus::kDeviceError && st != CompletionStatus::kShuttingDown) {
          return absl::DataLossError(absl::StrCat("peer ringd sent status ", m.code));
        }
        return st;
      }
      if ((spins & 255) == 255) {
        if (absl::Now() > deadline) return absl::DeadlineExceededError("peer ringd: no reply");
        if (ch->PollDisconnected()) return absl::UnavailableError("peer ringd disconnected");
        sched_yield();
      }
    }
  }
};

class RdmaListener::Impl {
 public:
  explicit Impl(const RdmaListenerOptions& o) : opts_(o) {
    if (!opts_.log) {
      opts_.log = [](const std::string& line) {
        std::fprintf(stderr, "ringd rdma: %s\n", line.c_str());
      };
    }
  }
  ~Impl();
  absl::Status Listen(std::uint16_t* port);
  void Run();
  void RequestStop() {
    stop_.store(true, std::memory_order_relaxed);  // observed after the eventfd wake
    const std::uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
  RdmaListenerStats Stats() {
    absl::MutexLock l(&stats_mu_);
    return stats_;
  }

 private:
  void Log(const std::string& s) { opts_.log(s); }
  void HandleCmEvents();
  void OnConnectRequest(rdma_cm_id* id, const std::string& pdata);
  absl::StatusOr<Device*> DeviceFor(ibv_context* verbs, int port_num);
  absl::StatusOr<Device*> DeviceFor(rdma_cm_id* id) { return DeviceFor(id->verbs, id->port_num); }

 public:
  CompletionStatus Remote(Connection& c, const Descriptor& d, std::uint64_t* result);

 private:
  // Grant side of one chunk, for a local requester and for a peer: checks and the grant's region.
  CompletionStatus CheckGrant(std::uint32_t handle, std::uint64_t key, std::uint64_t offset,
                              std::uint64_t len, bool write, Device* device, Connection** owner,
                              GrantedRegion* region);
  bool IsLocalNode(Connection& c, std::uint64_t node);
  absl::StatusOr<PeerLink*> PeerFor(std::uint64_t node);
  absl::Status HandlePeerOp(Connection& c, const ControlMessage& m);
  absl::Status SetUp(Connection& c);
  // Handles what the connection's CQ holds. `arm`: then arms the CQ and polls once more, so a
  // completion that lands before the thread sleeps is not missed. True if any message came.
  bool Service(Connection& c, bool arm);
  absl::Status HandleMessage(Connection& c, const ControlMessage& m, std::uint32_t len);
  absl::Status Execute(Connection& c);
  void Fail(Connection& c, absl::Status why);
  void Destroy(Connection* c);
  void Reject(rdma_cm_id* id, absl::StatusCode code, const std::string& why);
  template <typename F>
  void Count(F f) {
    absl::MutexLock l(&stats_mu_);
    f(stats_);
  }

  RdmaListenerOptions opts_;
  rdma_event_channel* events_ = nullptr;
  rdma_cm_id* listen_id_ = nullptr;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::map<ibv_context*, std::unique_ptr<Device>> devices_;
  std::map<std::uint32_t, std::unique_ptr<Connection>> conns_;
  std::uint32_t next_conn_id_ = 1;
  std::uint16_t port_ = 0;
  std::map<std::uint32_t, Grant> grants_;
  std::uint32_t next_grant_ = 1;
  std::map<std::uint64_t, std::unique_ptr<PeerLink>> peers_;
  absl::Mutex stats_mu_;
  RdmaListenerStats stats_;
};

absl::Status RdmaListener::Impl::Listen(std::uint16_t* port) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return pinring::LastErrnoStatus("eventfd");
  events_ = rdma_create_event_channel();
  if (events_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "rdma_create_event_channel: ", std::strerror(errno),
        " (no rdma_cm: load rdma_ucm, or run with --rdma_port=0 to disable the rdma listener)"));
  }
  PINRING_RETURN_IF_ERROR(SetNonBlocking(events_->fd));
  if (rdma_create_id(events_, &listen_id_, nullptr, RDMA_PS_TCP) != 0) {
    return pinring::LastErrnoStatus("rdma_create_id");
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(opts_.port);
  if (inet_pton(AF_INET, opts_.bind_address.c_str(), &sin.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rdma_bind '", opts_.bind_address, "' is not an IPv4 address"));
  }
  if (rdma_bind_addr(listen_id_, reinterpret_cast<sockaddr*>(&sin)) != 0) {
    const int err = errno;
    return absl::UnavailableError(absl::StrCat("rdma_bind_addr(", opts_.bind_address, ":",
                                               opts_.port, "): ", std::strerror(err)));
  }
  if (rdma_listen(listen_id_, 16) != 0) return pinring::LastErrnoStatus("rdma_listen");
  *port = port_ = ntohs(rdma_get_src_port(listen_id_));
  return absl::OkStatus();
}

RdmaListener::Impl::~Impl() {
  while (!conns_.empty()) Destroy(conns_.begin()->second.get());
  peers_.clear();  // before the devices' PDs
  if (listen_id_ != nullptr) rdma_destroy_id(listen_id_);
  for (auto& [ctx, d] : devices_) {
    if (d->comp != nullptr) ibv_destroy_comp_channel(d->comp);
    d->dev.reset();
  }
  if (events_ != nullptr) rdma_destroy_event_channel(events_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void RdmaListener::Impl::Reject(rdma_cm_id* id, absl::StatusCode code, const std::string& why) {
  rdma::ConnectReply rep{};
  rep.magic = rdma::kRdmaMagic;
  rep.version = rdma::kRdmaVersion;
  rep.code = static_cast<std::int32_t>(code);
  std::snprintf(rep.text, sizeof rep.text, "%s", why.c_str());
  (void)rdma_reject(id, &rep, sizeof rep);
  rdma_destroy_id(id);
  Count([](RdmaListenerStats& s) { ++s.rejected; });
  Log(absl::StrCat("rejected a connection: ", why));
}

absl::StatusOr<Device*> RdmaListener::Impl::DeviceFor(ibv_context* verbs, int port_num) {
  auto it = devices_.find(verbs);
  if (it != devices_.end()) return it->second.get();
  auto d = std::make_unique<Device>();
  PINRING_ASSIGN_OR_RETURN(d->dev, VerbsDevice::Adopt(verbs, port_num));
  d->comp = ibv_create_comp_channel(verbs);
  if (d->comp == nullptr) return pinring::LastErrnoStatus("ibv_create_comp_channel");
  PINRING_RETURN_IF_ERROR(SetNonBlocking(d->comp->fd));
  Log(absl::StrCat("serving rdma clients on ", d->dev->name()));
  return (devices_[verbs] = std::move(d)).get();
}

void RdmaListener::Impl::OnConnectRequest(rdma_cm_id* id, const std::string& pdata) {
  // Untrusted: the private data is whatever the peer put in its REQ (connect_request.h).
  auto decoded = DecodeConnectRequest(pdata, opts_.max_sq_entries);
  if (!decoded.ok()) {
    return Reject(id, decoded.status().code(), std::string(decoded.status().message()));
  }
  const rdma::ConnectRequest req = *decoded;
  const bool peer = (req.flags & rdma::kConnectFlagPeer) != 0;
  if (conns_.size() >= opts_.max_connections) {
    return Reject(id, absl::StatusCode::kResourceExhausted,
                  absl::StrCat("connection limit ", opts_.max_connections, " reached"));
  }
  auto dev = DeviceFor(id);
  if (!dev.ok()) return Reject(id, absl::StatusCode::kUnavailable, dev.status().ToString());
  auto c = std::make_unique<Connection>();
  c->id = next_conn_id_++;
  c->impl = this;
  c->peer = peer;
  c->device = *dev;
  c->ch = RdmaChannel::FromConnectRequest(id);
  c->req = req;
  c->sq_mask = req.sq_entries - 1;
  c->cq_mask = req.cq_entries - 1;
  c->op_timeout = opts_.op_timeout;
  c->accepted_at = absl::Now();
  if (absl::Status s = SetUp(*c); !s.ok()) {
    // The channel owns the id now: destroy QP etc. via the connection, reject first.
    rdma::ConnectReply rep{};
    rep.magic = rdma::kRdmaMagic;
    rep.version = rdma::kRdmaVersion;
    rep.code = static_cast<std::int32_t>(s.code());
    std::snprintf(rep.text, sizeof rep.text, "%s", std::string(s.message()).c_str());
    (void)c->ch->Reject(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(&rep), sizeof rep));
    Count([](RdmaListenerStats& st) { ++st.rejected; });
    Log(absl::StrCat("connection setup failed: ", s.ToString()));
    return;  // c's destructor destroys QP, CQ and the id
  }
  id->context = c.get();
  Count([](RdmaListenerStats& st) {
    ++st.accepted;
    ++st.connected;
  });
  Log(peer ? absl::StrCat("connection ", c->id, ": ringd peer")
            : absl::StrCat("connection ", c->id, ": sq ", req.sq_entries, ", cq ",
                           req.cq_entries));
  conns_[c->id] = std::move(c);
}

absl::Status RdmaListener::Impl::SetUp(Connection& c) {
  VerbsDevice& dev = *c.device->dev;
  RdmaChannel::QpOptions qo;
  qo.send_depth = kSendDepth;
  qo.recv_depth = kRecvDepth;
  qo.comp_channel = c.device->comp;
  qo.cq_context = &c;
  PINRING_RETURN_IF_ERROR(c.ch->CreateQp(dev, qo));
  // ringd's own memory for this connection: receive and send slots, a staging copy of the SQ
  // (what RDMA READ fetches), of the CQ (what RDMA WRITE pushes), and the data bounce buffer.
  c.send_off = std::uint64_t{kRecvDepth} * kSlotBytes;
  c.sq_off = RoundUp(c.send_off + std::uint64_t{kSendSlots} * kSlotBytes, kPageSize);
  c.cq_off = c.sq_off + rdma::SqBytes(c.req.sq_entries);
  c.bounce_off = c.cq_off + rdma::CqBytes(c.req.cq_entries);
  PrivateRegion::Options po;
  po.mode = ForkMode::kDontFork;  // ringd never forks a child that needs this memory
  po.device_writes = true;
  PINRING_ASSIGN_OR_RETURN(c.mem, PrivateRegion::Create(dev, c.bounce_off + kBounceBytes, po));
  c.send_busy.assign(kSendSlots, false);
  for (std::uint32_t i = 0; i < kRecvDepth; ++i) {
    PINRING_RETURN_IF_ERROR(
        c.ch->PostRecv(c.mem->mr(), std::uint64_t{i} * kSlotBytes, kSlotBytes, kRecvTag | i));
  }
  rdma::ConnectReply rep{};
  rep.magic = rdma::kRdmaMagic;
  rep.version = rdma::kRdmaVersion;
  rep.connection_id = c.id;
  rep.max_regions = opts_.max_regions_per_connection;
  return c.ch->Accept(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(&rep), sizeof rep));
}

void RdmaListener::Impl::HandleCmEvents() {
  for (;;) {
    rdma_cm_event* ev = nullptr;
    if (rdma_get_cm_event(events_, &ev) != 0) return;  // EAGAIN: drained
    const rdma_cm_event_type type = ev->event;
    rdma_cm_id* id = ev->id;
    std::string pdata;
    if (ev->param.conn.private_data != nullptr) {
      pdata.assign(static_cast<const char*>(ev->param.conn.private_data),
                   ev->param.conn.private_data_len);
    }
    rdma_ack_cm_event(ev);  // before any rdma_destroy_id of this id
    if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
      OnConnectRequest(id, pdata);
      continue;
    }
    auto* c = static_cast<Connection*>(id != nullptr ? id->context : nullptr);
    if (c == nullptr || id == listen_id_) continue;
    switch (type) {
      case RDMA_CM_EVENT_ESTABLISHED:
        c->established = true;
        break;
      case RDMA_CM_EVENT_DISCONNECTED:
      case RDMA_CM_EVENT_TIMEWAIT_EXIT:
      case RDMA_CM_EVENT_CONNECT_ERROR:
      case RDMA_CM_EVENT_UNREACHABLE:
      case RDMA_CM_EVENT_REJECTED:
      case RDMA_CM_EVENT_DEVICE_REMOVAL:
        if (c->error.ok()) Count([](RdmaListenerStats& s) { ++s.closed; });
        c->dead = true;
        break;
      default:
        break;
    }
  }
}

absl::Status RdmaListener::Impl::HandleMessage(Connection& c, const ControlMessage& m,
                                               std::uint32_t len) {
  // Untrusted: the size, magic and type decide whether this is a message at all.
  if (!rdma::IsWellFormed(m, len)) {
    return absl::InvalidArgumentError(absl::StrCat("garbage message (", len, " bytes)"));
  }
  // A peer ringd may only forward REMOTE ops; a client may not.
  if (c.peer != (m.type == static_cast<std::uint16_t>(ControlType::kPeerOp))) {
    return absl::InvalidArgumentError(absl::StrCat("message type ", m.type, " not allowed on a ",
                                                   c.peer ? "peer" : "client", " connection"));
  }
  ControlMessage reply{};
  reply.magic = rdma::kRdmaMagic;
  reply.seq = m.seq;
  switch (static_cast<ControlType>(m.type)) {
    case ControlType::kPeerOp:
      return HandlePeerOp(c, m);
    case ControlType::kExportRegion: {
      reply.type = static_cast<std::uint16_t>(ControlType::kExportRegionReply);
      // Untrusted handle: it must name one of this connection's own regions.
      absl::StatusCode code = absl::StatusCode::kOk;
      if (c.regions.count(m.handle) == 0) {
        code = absl::StatusCode::kNotFound;
      } else if (grants_.size() >=
                 std::uint64_t{opts_.max_connections} * opts_.max_regions_per_connection) {
        code = absl::StatusCode::kResourceExhausted;
      } else {
        sockaddr* local = rdma_get_local_addr(c.ch->id());
        std::uint32_t ip = 0;
        if (local != nullptr && local->sa_family == AF_INET) {
          ip = ntohl(reinterpret_cast<sockaddr_in*>(local)->sin_addr.s_addr);
        }
        const std::uint32_t g = next_grant_++;
        grants_[g] = Grant{c.id, m.handle, RandomKey()};
        reply.handle = g;
        reply.value = grants_[g].key;
        reply.addr = rdma::NodeId(ip, port_);
      }
      reply.code = static_cast<std::int32_t>(code);
      return c.Send(reply);
    }
    case ControlType::kRevokeGrant: {
      reply.type = static_cast<std::uint16_t>(ControlType::kRevokeGrantReply);
      // Untrusted handle: only the owner of a grant may revoke it.
      auto it = grants_.find(m.handle);
      if (it != grants_.end() && it->second.conn_id == c.id) {
        grants_.erase(it);
        reply.code = 0;
      } else {
        reply.code = static_cast<std::int32_t>(absl::StatusCode::kNotFound);
      }
      return c.Send(reply);
    }
    case ControlType::kDoorbell: {
      const auto tail = static_cast<std::uint32_t>(m.value);
      // Untrusted tail: it may be anything. Between our own head and head + sq_entries it names
      // descriptors the client wrote; beyond that the client broke the protocol (or lies).
      if (tail - c.head > c.req.sq_entries) {
        return absl::OutOfRangeError(absl::StrCat("doorbell tail ", tail, " is more than ",
                                                  c.req.sq_entries, " past head ", c.head));
      }
      // A doorbell that brings nothing new costs us a receive: bound how many in a row.
      if (tail - c.head <= c.tail - c.head) {
        if (++c.idle_doorbells > opts_.max_idle_doorbells) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "doorbell flood: ", c.idle_doorbells, " doorbells without new descriptors"));
        }
        return absl::OkStatus();
      }
      c.idle_doorbells = 0;
      c.tail = tail;
      return absl::OkStatus();
    }
    case ControlType::kRegisterRegion: {
      reply.type = static_cast<std::uint16_t>(ControlType::kRegisterRegionReply);
      // Untrusted: addr/length/rkey are the client's claim. We bound them so our own arithmetic
      // cannot overflow; the NIC checks the claim against the MR on every access.
      absl::Status st;
      if (m.length == 0 || m.length > opts_.max_region_bytes || m.addr + m.length < m.addr ||
          (m.flags & ~rdma::kRegionFlagsKnown) != 0) {
        st = absl::InvalidArgumentError("bad region");
      } else if (c.regions.size() >= opts_.max_regions_per_connection) {
        st = absl::ResourceExhaustedError("region limit");
      }
      if (st.ok()) {
        reply.handle = c.next_handle++;
        c.regions[reply.handle] = GrantedRegion{m.addr, m.length, m.rkey,
                                                (m.flags & rdma::kRegionDeviceWritable) != 0};
      }
      reply.code = static_cast<std::int32_t>(st.code());
      return c.Send(reply);
    }
    case ControlType::kDeregisterRegion: {
      reply.type = static_cast<std::uint16_t>(ControlType::kDeregisterRegionReply);
      // Revoking the grant: later descriptors naming it complete kUnknownRegion; so do REMOTE
      // ops naming an export of it.
      std::erase_if(grants_, [&](const auto& g) {
        return g.second.conn_id == c.id && g.second.region_handle == m.handle;
      });
      reply.code = c.regions.erase(m.handle) == 1
                       ? 0
                       : static_cast<std::int32_t>(absl::StatusCode::kNotFound);
      return c.Send(reply);
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("message type ", m.type, " is not one a client sends"));
  }
}

absl::Status RdmaListener::Impl::Execute(Connection& c) {
  std::uint32_t started = 0;
  while (c.head != c.tail) {
    // Fetch: the contiguous run [head, min(tail, end of ring)) in one RDMA READ.
    const std::uint32_t slot = c.head & c.sq_mask;
    const std::uint32_t n = std::min(c.tail - c.head, c.req.sq_entries - slot);
    PINRING_RETURN_IF_ERROR(c.RunOp(IBV_WR_RDMA_READ, c.sq_off + std::uint64_t{slot} * 64, n * 64,
                                    c.req.sq_addr + std::uint64_t{slot} * sizeof(Descriptor),
                                    c.req.sq_rkey));
    auto* staged = reinterpret_cast<const Descriptor*>(static_cast<std::byte*>(c.mem->data()) +
                                                       c.sq_off);
    auto* cq = reinterpret_cast<Completion*>(static_cast<std::byte*>(c.mem->data()) + c.cq_off);
    const std::uint32_t first_cq = c.cq_tail;
    for (std::uint32_t i = 0; i < n; ++i) {
      Descriptor d;
      std::memcpy(&d, &staged[slot + i], sizeof d);  // our private copy; validated in ExecuteOne
      Completion comp{};
      comp.user_data = d.user_data;
      CompletionStatus status = ExecuteOne(d, c, &comp.result);
      if (!c.error.ok()) return c.error;  // the transport failed under this descriptor
      comp.status = static_cast<std::int32_t>(status);
      cq[c.cq_tail & c.cq_mask] = comp;
      ++c.cq_tail;
    }
    c.head += n;
    started += n;
    // Complete: RDMA WRITE the new completions (one or two runs around the wrap), not waited
    // for: the notification SEND posted right after them on the same RC QP is delivered only
    // after their data, so the client may read the completions as soon as it polls that
    // receive, and the SEND's completion retires them (kSendDepth covers 3 WRs per send slot).
    // The staged completions are not rewritten before the client has reaped them (a new one
    // for the same slot needs the ring to wrap); a client that overruns its CQ only garbles
    // its own completions.
    for (std::uint32_t done = first_cq; done != c.cq_tail;) {
      const std::uint32_t cslot = done & c.cq_mask;
      const std::uint32_t m = std::min(c.cq_tail - done, c.req.cq_entries - cslot);
      PINRING_RETURN_IF_ERROR(c.PostWriteNoWait(
          c.cq_off + std::uint64_t{cslot} * sizeof(Completion),
          m * static_cast<std::uint32_t>(sizeof(Completion)),
          c.req.cq_addr + std::uint64_t{cslot} * sizeof(Completion), c.req.cq_rkey));
      done += m;
    }
    // ... then the notification.
    ControlMessage note{};
    note.magic = rdma::kRdmaMagic;
    note.type = static_cast<std::uint16_t>(ControlType::kCompletions);
    note.value = c.cq_tail;
    PINRING_RETURN_IF_ERROR(c.Send(note));
  }
  if (started > 0) Count([started](RdmaListenerStats& s) { s.descriptors += started; });
  return absl::OkStatus();
}

void RdmaListener::Impl::Fail(Connection& c, absl::Status why) {
  if (c.dead) return;
  Log(absl::StrCat("connection ", c.id, " failed: ", why.ToString()));
  if (!c.qp_broken && c.established) {
    // Tell the client why, best effort, before the disconnect flushes everything. (A client that
    // never finished its handshake cannot be told anything.)
    ControlMessage m{};
    m.magic = rdma::kRdmaMagic;
    m.type = static_cast<std::uint16_t>(ControlType::kError);
    m.code = static_cast<std::int32_t>(why.code());
    std::snprintf(m.text, sizeof m.text, "%s", std::string(why.message()).c_str());
    c.op_timeout = absl::Milliseconds(500);
    if (c.Send(m).ok()) {
      const absl::Time deadline = absl::Now() + absl::Milliseconds(500);
      while (std::any_of(c.send_busy.begin(), c.send_busy.end(), [](bool b) { return b; }) &&
             absl::Now() < deadline && c.PollAll().ok()) {
        sched_yield();
      }
    }
  }
  if (c.error.ok()) c.error = why;
  c.ch->Disconnect();
  c.dead = true;
  Count([](RdmaListenerStats& s) { ++s.failed; });
}

bool RdmaListener::Impl::Service(Connection& c, bool arm) {
  if (c.dead) return false;
  absl::Status st = c.PollAll();
  bool armed = !arm;  // not arming: one round only
  bool worked = false;
  for (;;) {
    while (st.ok() && !c.inbox.empty()) {
      worked = true;
      auto msgs = std::move(c.inbox);
      c.inbox.clear();
      for (auto& [m, len] : msgs) {
        st = HandleMessage(c, m, len);
        if (!st.ok()) break;
      }
      if (st.ok()) st = Execute(c);
      if (st.ok()) st = c.PollAll();
    }
    if (!st.ok() || armed) break;
    // Re-arm, then poll once more: a completion between the last poll and the arm raised no
    // event and would otherwise wait for the loop's timeout.
    st = c.ch->ArmCq();
    armed = true;
    if (st.ok()) st = c.PollAll();
  }
  if (!st.ok()) Fail(c, st);
  return worked;
}

void RdmaListener::Impl::Destroy(Connection* c) {
  const std::uint32_t id = c->id;
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  std::unique_ptr<Connection> owned = std::move(it->second);
  conns_.erase(it);
  std::erase_if(grants_, [id](const auto& g) { return g.second.conn_id == id; });
  owned->ch->id()->context = nullptr;
  owned->ch->Disconnect();
  owned->ch->DestroyQp();  // QP + CQ before the connection's MR and the PD
  owned->mem.reset();
  owned->ch.reset();       // rdma_destroy_id
  Count([](RdmaListenerStats& s) { --s.connected; });
}

void RdmaListener::Impl::Run() {
  // Sleep in poll() only after a whole poll window without messages; inside the window, spin on
  // the CQs (ibv_poll_cq: no system call on rxe or hardware) and look at the fds now and then.
  bool sleep = true;
  absl::Time spin_until = absl::InfinitePast();
  std::uint32_t passes = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    if (sleep || (++passes & 255) == 0) {
      std::vector<pollfd> fds;
      fds.push_back({events_->fd, POLLIN, 0});
      fds.push_back({wake_fd_, POLLIN, 0});
      for (auto& [ctx, d] : devices_) fds.push_back({d->comp->fd, POLLIN, 0});
      // The timeout is a safety net (a missed CQ event delays a client by at most this long).
      (void)::poll(fds.data(), fds.size(), sleep ? 100 : 0);
      HandleCmEvents();
      for (auto& [ctx, d] : devices_) {
        ibv_cq* cq = nullptr;
        void* cq_ctx = nullptr;
        // Drain and ack every CQ event now: we service all connections below anyway, and an
        // acked event never blocks ibv_destroy_cq. (The channel fd is non-blocking.)
        while (ibv_get_cq_event(d->comp, &cq, &cq_ctx) == 0) ibv_ack_cq_events(cq, 1);
      }
    }
    bool worked = false;
    for (auto& [id, c] : conns_) worked |= Service(*c, /*arm=*/false);
    const absl::Time now = absl::Now();
    if (worked) spin_until = now + opts_.poll_window;
    sleep = now >= spin_until;
    if (sleep) {
      // About to sleep: arm every CQ (and poll once more after arming). Anything that arrived
      // meanwhile is handled now and keeps us awake.
      for (auto& [id, c] : conns_) {
        if (Service(*c, /*arm=*/true)) {
          spin_until = absl::Now() + opts_.poll_window;
          sleep = false;
        }
      }
    }
    std::vector<Connection*> dead;
    for (auto& [id, c] : conns_) {
      // A REQ whose sender never sent the RTU: a half-open connection holds a QP and staging.
      if (!c->established && !c->dead && now - c->accepted_at > opts_.handshake_timeout) {
        Fail(*c, absl::DeadlineExceededError(absl::StrCat(
                     "the client did not finish the rdma_cm handshake (no RTU) within ",
                     absl::FormatDuration(opts_.handshake_timeout))));
      }
      if (c->dead) dead.push_back(c.get());
    }
    for (Connection* c : dead) Destroy(c);
  }
}

// --- remote data movement (grants, peers) ---------------------------------------------------
CompletionStatus Connection::Remote(const Descriptor& d, std::uint64_t* result) {
  return impl->Remote(*this, d, result);
}

CompletionStatus RdmaListener::Impl::CheckGrant(std::uint32_t handle, std::uint64_t key,
                                                std::uint64_t offset, std::uint64_t len,
                                                bool write, Device* device, Connection** owner,
                                                GrantedRegion* region) {
  // Untrusted handle, key, offset and length (a client's descriptor or a peer ringd's PeerOp).
  // A revoked grant, a wrong key, a dead owner or a destroyed region all look the same.
  auto g = grants_.find(handle);
  if (g == grants_.end() || g->second.key != key) return CompletionStatus::kUnknownRegion;
  auto o = conns_.find(g->second.conn_id);
  if (o == conns_.end() || o->second->dead || o->second->qp_broken) {
    return CompletionStatus::kUnknownRegion;
  }
  const GrantedRegion* r = o->second->Lookup(g->second.region_handle);
  if (r == nullptr) return CompletionStatus::kUnknownRegion;
  if (offset > r->length || len > r->length - offset) return CompletionStatus::kOutOfBounds;
  if (write && !r->writable) return CompletionStatus::kReadOnlyRegion;
  // The data moves through a buffer of the requester's MR on the owner's QP: same PD needed.
  if (o->second->device != device) return CompletionStatus::kDeviceError;
  *owner = o->second.get();
  *region = *r;
  return CompletionStatus::kOk;
}

bool RdmaListener::Impl::IsLocalNode(Connection& c, std::uint64_t node) {
  if (node == 0) return true;
  if (rdma::NodePort(node) != port_) return false;
  sockaddr* local = rdma_get_local_addr(c.ch->id());
  return local != nullptr && local->sa_family == AF_INET &&
         ntohl(reinterpret_cast<sockaddr_in*>(local)->sin_addr.s_addr) == rdma::NodeAddr(node);
}

absl::StatusOr<PeerLink*> RdmaListener::Impl::PeerFor(std::uint64_t node) {
  auto it = peers_.find(node);
  if (it != peers_.end()) {
    // A link the peer already closed (its ringd restarted or stopped) is replaced right away
    // instead of failing one more op.
    if (!it->second->ch->PollDisconnected()) return it->second.get();
    Log(absl::StrCat("peer link to node 0x", absl::Hex(node), " was closed; reconnecting"));
    peers_.erase(it);
  }
  in_addr a{};
  a.s_addr = htonl(rdma::NodeAddr(node));
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, text, sizeof text);
  auto p = std::make_unique<PeerLink>();
  p->node = node;
  PINRING_ASSIGN_OR_RETURN(p->ch, RdmaChannel::Resolve(text, rdma::NodePort(node),
                                                       opts_.op_timeout));
  PINRING_ASSIGN_OR_RETURN(Device * dev, DeviceFor(p->ch->verbs(), p->ch->port_num()));
  RdmaChannel::QpOptions qo;
  qo.send_depth = 8;
  qo.recv_depth = PeerLink::kRecv;
  PINRING_RETURN_IF_ERROR(p->ch->CreateQp(*dev->dev, qo));
  PrivateRegion::Options po;
  po.mode = ForkMode::kDontFork;
  po.device_writes = true;
  PINRING_ASSIGN_OR_RETURN(p->mem,
                           PrivateRegion::Create(*dev->dev, p->buf_off + kBounceBytes, po));
  for (std::uint32_t i = 0; i < PeerLink::kRecv; ++i) {
    PINRING_RETURN_IF_ERROR(
        p->ch->PostRecv(p->mem->mr(), std::uint64_t{i} * kSlotBytes, kSlotBytes, kRecvTag | i));
  }
  rdma::ConnectRequest req{};
  req.magic = rdma::kRdmaMagic;
  req.version = rdma::kRdmaVersion;
  req.flags = rdma::kConnectFlagPeer;
  req.recv_depth = PeerLink::kRecv;
  std::string reply;
  absl::Status st = p->ch->Connect(
      absl::MakeConstSpan(reinterpret_cast<const std::byte*>(&req), sizeof req), opts_.op_timeout,
      &reply);
  if (!st.ok()) {
    return absl::Status(st.code(), absl::StrCat("ringd peer ", text, ":", rdma::NodePort(node),
                                                ": ", st.message()));
  }
  Log(absl::StrCat("peer link to ", text, ":", rdma::NodePort(node), " up"));
  return (peers_[node] = std::move(p)).get();
}

CompletionStatus RdmaListener::Impl::Remote(Connection& c, const Descriptor& d,
                                            std::uint64_t* result) {
  // ValidateRdmaDescriptor accepted the local side (region, bounds, writability) and the grant
  // side's offset + length does not overflow.
  const bool write = d.opcode == kOpRemoteWrite;
  const GrantedRegion local = *c.Lookup(write ? d.src_region : d.dst_region);
  const std::uint64_t local_off = write ? d.src_offset : d.dst_offset;
  const std::uint32_t handle = write ? d.dst_region : d.src_region;
  const std::uint64_t grant_off = write ? d.dst_offset : d.src_offset;
  const std::uint64_t key = d.value;
  const std::uint64_t node = d.reserved2;
  *result = 0;
  if (IsLocalNode(c, node)) {
    Connection* owner = nullptr;
    GrantedRegion region;
    const CompletionStatus st =
        CheckGrant(handle, key, grant_off, d.length, write, c.device, &owner, &region);
    if (st != CompletionStatus::kOk) return st;
    for (std::uint64_t done = 0; done < d.length;) {
      const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(kBounceBytes,
                                                                        d.length - done));
      if (write) {
        if (!c.Read(local.addr + local_off + done, local.rkey, n).ok()) {
          return CompletionStatus::kDeviceError;
        }
        // The owner's failure is the owner's: it is failed at its next service.
        if (!owner->RunOpMr(IBV_WR_RDMA_WRITE, c.mem->mr(), c.bounce_off, n,
                            region.addr + grant_off + done, region.rkey)
                 .ok()) {
          return CompletionStatus::kDeviceError;
        }
      } else {
        if (!owner->RunOpMr(IBV_WR_RDMA_READ, c.mem->mr(), c.bounce_off, n,
                            region.addr + grant_off + done, region.rkey)
                 .ok() ||
            !c.Write(local.addr + local_off + done, local.rkey, n).ok()) {
          return CompletionStatus::kDeviceError;
        }
      }
      done += n;
    }
    *result = d.length;
    return CompletionStatus::kOk;
  }
  // Another ringd's grant: forward chunk by chunk over the peer link (connected on demand).
  auto peer = PeerFor(node);
  if (!peer.ok()) {
    Log(absl::StrCat("connection ", c.id, ": ", peer.status().ToString()));
    return CompletionStatus::kDeviceError;
  }
  PeerLink* p = *peer;
  for (std::uint64_t done = 0; done < d.length;) {
    const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(kBounceBytes,
                                                                      d.length - done));
    if (write) {
      if (!c.Read(local.addr + local_off + done, local.rkey, n).ok()) {
        return CompletionStatus::kDeviceError;
      }
      std::memcpy(p->buf(), c.bounce(), n);
    }
    auto st = p->Request(write ? rdma::kPeerWrite : rdma::kPeerRead, handle, key, grant_off + done,
                         n, opts_.op_timeout);
    if (!st.ok()) {
      // The link is gone: this op fails, the next one reconnects.
      Log(absl::StrCat("peer link to node 0x", absl::Hex(node), " lost: ",
                       st.status().ToString()));
      peers_.erase(node);
      return CompletionStatus::kDeviceError;
    }
    if (*st != CompletionStatus::kOk) return *st;
    if (!write) {
      std::memcpy(c.bounce(), p->buf(), n);
      if (!c.Write(local.addr + local_off + done, local.rkey, n).ok()) {
        return CompletionStatus::kDeviceError;
      }
    }
    done += n;
  }
  *result = d.length;
  return CompletionStatus::kOk;
}

absl::Status RdmaListener::Impl::HandlePeerOp(Connection& c, const ControlMessage& m) {
  rdma::PeerOp op;
  std::memcpy(&op, &m, sizeof op);
  // Untrusted: a peer ringd. A chunk larger than our buffer or an unknown direction is a protocol
  // violation (the connection ends); grant problems are statuses in the reply.
  if (op.length == 0 || op.length > rdma::kPeerChunkBytes ||
      (op.direction != rdma::kPeerWrite && op.direction != rdma::kPeerRead)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad peer op (length ", op.length, ", direction ", op.direction, ")"));
  }
  const bool write = op.direction == rdma::kPeerWrite;
  Connection* owner = nullptr;
  GrantedRegion region;
  CompletionStatus st =
      CheckGrant(op.handle, op.key, op.offset, op.length, write, c.device, &owner, &region);
  if (st == CompletionStatus::kOk) {
    if (write) {
      // The peer's buffer through its rkey (the NIC checks it), then into the grant.
      PINRING_RETURN_IF_ERROR(c.Read(op.buf_addr, op.buf_rkey, op.length));
      if (!owner->RunOpMr(IBV_WR_RDMA_WRITE, c.mem->mr(), c.bounce_off, op.length,
                          region.addr + op.offset, region.rkey)
               .ok()) {
        st = CompletionStatus::kDeviceError;
      }
    } else {
      if (!owner->RunOpMr(IBV_WR_RDMA_READ, c.mem->mr(), c.bounce_off, op.length,
                          region.addr + op.offset, region.rkey)
               .ok()) {
        st = CompletionStatus::kDeviceError;
      } else {
        // RC ordering: this WRITE's data lands before the reply SEND below.
        PINRING_RETURN_IF_ERROR(c.Write(op.buf_addr, op.buf_rkey, op.length));
      }
    }
  }
  ControlMessage reply{};
  reply.magic = rdma::kRdmaMagic;
  reply.type = static_cast<std::uint16_t>(ControlType::kPeerOpReply);
  reply.seq = op.seq;
  reply.code = static_cast<std::int32_t>(st);
  reply.value = st == CompletionStatus::kOk ? op.length : 0;
  return c.Send(reply);
}

// --- RdmaListener ----------------------------------------------------------------------------
absl::StatusOr<std::unique_ptr<RdmaListener>> RdmaListener::Start(
    const RdmaListenerOptions& opts) {
  auto l = std::unique_ptr<RdmaListener>(new RdmaListener());
  l->impl_ = std::make_unique<Impl>(opts);
  PINRING_RETURN_IF_ERROR(l->impl_->Listen(&l->port_));
  Impl* impl = l->impl_.get();
  l->thread_ = std::thread([impl] { impl->Run(); });
  return l;
}

RdmaListener::~RdmaListener() { Stop(); }

void RdmaListener::Stop() {
  if (impl_ == nullptr) return;
  impl_->RequestStop();
  if (thread_.joinable()) thread_.join();
  impl_.reset();  // disconnects and destroys every connection, then the listen id
}

RdmaListenerStats RdmaListener::stats() const {
  return impl_ != nullptr ? impl_->Stats() : RdmaListenerStats{};
}

}  // namespace pinring::ringd
