#include "service/rdma/rdma_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "verbs/rdma_channel.h"
#include "wire/rdma_wire.h"
#include "pinring/status.h"
#include "verbs/verbs_device.h"
#include "service/rdma/connect_request.h"
#include "service/rdma/connection.h"
#include "service/rdma/context.h"
#include "service/rdma/grant_table.h"
#include "service/rdma/peer_link.h"
#include "service/rdma/remote_memory.h"

namespace pinring::ringd {
namespace {

absl::Status SetNonBlocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return pinring::LastErrnoStatus("fcntl");
  return absl::OkStatus();
}

rdma::ConnectReply ErrorReply(absl::StatusCode code, const std::string& why) {
  rdma::ConnectReply rep{};
  rep.magic = rdma::kRdmaMagic;
  rep.version = rdma::kRdmaVersion;
  rep.code = static_cast<std::int32_t>(code);
  std::snprintf(rep.text, sizeof rep.text, "%s", why.c_str());
  return rep;
}

}  // namespace

class RdmaListener::Impl {
 public:
  explicit Impl(const RdmaListenerOptions& o)
      : grants_(std::uint64_t{o.max_connections} * o.max_regions_per_connection),
        remote_(ctx_, grants_, conns_, peers_) {
    ctx_.opts = o;
    if (!ctx_.opts.log) {
      ctx_.opts.log = [](const std::string& line) {
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
    absl::MutexLock l(&ctx_.stats_mu);
    return ctx_.stats;
  }

 private:
  void HandleCmEvents();
  void OnConnectRequest(rdma_cm_id* id, const std::string& pdata);
  void Reject(rdma_cm_id* id, absl::StatusCode code, const std::string& why);
  absl::StatusOr<Device*> DeviceFor(rdma_cm_id* id);
  // Polls every CQ, runs what became ready, starts the tasks that have work. True if anything
  // progressed.
  bool Pass();
  // Deadlines, handshake timeouts, closes; reaps dead connections.
  void Housekeeping(absl::Time now);
  void Publish(absl::Time now);
  void Shutdown();

  TransportContext ctx_;
  // Wakes the loop: a stop, or a peer link a helper thread finished.
  int wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  rdma_event_channel* events_ = nullptr;
  rdma_cm_id* listen_id_ = nullptr;
  std::atomic<bool> stop_{false};
  std::map<ibv_context*, std::unique_ptr<Device>> devices_;
  RemoteMemory::Connections conns_;
  GrantTable grants_;
  PeerPool peers_{ctx_, wake_fd_};
  RemoteMemory remote_;
  std::uint32_t next_conn_id_ = 1;
  absl::Time published_ = absl::InfinitePast();
  bool changed_ = true;
  bool shut_down_ = false;
};

absl::Status RdmaListener::Impl::Listen(std::uint16_t* port) {
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
  sin.sin_port = htons(ctx_.opts.port);
  if (inet_pton(AF_INET, ctx_.opts.bind_address.c_str(), &sin.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rdma_bind '", ctx_.opts.bind_address, "' is not an IPv4 address"));
  }
  if (rdma_bind_addr(listen_id_, reinterpret_cast<sockaddr*>(&sin)) != 0) {
    const int err = errno;
    return absl::UnavailableError(absl::StrCat("rdma_bind_addr(", ctx_.opts.bind_address, ":",
                                               ctx_.opts.port, "): ", std::strerror(err)));
  }
  if (rdma_listen(listen_id_, 16) != 0) return pinring::LastErrnoStatus("rdma_listen");
  *port = ctx_.port = ntohs(rdma_get_src_port(listen_id_));
  return absl::OkStatus();
}

void RdmaListener::Impl::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // Every wait fails, every task runs to its end, then the connections go: no coroutine frame
  // is destroyed while it waits.
  for (auto& [id, c] : conns_) c->Abort(absl::UnavailableError("ringd is stopping"));
  peers_.Shutdown();
  ctx_.ops.FailAll(absl::UnavailableError("ringd is stopping"));
  for (int round = 0; round < 1000 && !ctx_.ready.empty(); ++round) ctx_.ready.RunAll();
  for (auto& [id, c] : conns_) c->Reap();
  conns_.clear();
}

RdmaListener::Impl::~Impl() {
  Shutdown();
  peers_.Clear();  // before the devices' PDs
  if (listen_id_ != nullptr) rdma_destroy_id(listen_id_);
  for (auto& [ctx, d] : devices_) {
    if (d->comp != nullptr) ibv_destroy_comp_channel(d->comp);
    d->dev.reset();
  }
  if (events_ != nullptr) rdma_destroy_event_channel(events_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void RdmaListener::Impl::Reject(rdma_cm_id* id, absl::StatusCode code, const std::string& why) {
  const rdma::ConnectReply rep = ErrorReply(code, why);
  (void)rdma_reject(id, &rep, sizeof rep);
  rdma_destroy_id(id);
  ctx_.Count([](RdmaListenerStats& s) { ++s.rejected; });
  ctx_.Log(absl::StrCat("rejected a connection: ", why));
}

absl::StatusOr<Device*> RdmaListener::Impl::DeviceFor(rdma_cm_id* id) {
  auto it = devices_.find(id->verbs);
  if (it != devices_.end()) return it->second.get();
  auto d = std::make_unique<Device>();
  PINRING_ASSIGN_OR_RETURN(d->dev, VerbsDevice::Adopt(id->verbs, id->port_num));
  d->comp = ibv_create_comp_channel(id->verbs);
  if (d->comp == nullptr) return pinring::LastErrnoStatus("ibv_create_comp_channel");
  PINRING_RETURN_IF_ERROR(SetNonBlocking(d->comp->fd));
  ctx_.Log(absl::StrCat("serving rdma clients on ", d->dev->name()));
  return (devices_[id->verbs] = std::move(d)).get();
}

void RdmaListener::Impl::OnConnectRequest(rdma_cm_id* id, const std::string& pdata) {
  // Untrusted: the private data is whatever the peer put in its REQ (connect_request.h).
  auto decoded = DecodeConnectRequest(pdata, ctx_.opts.max_sq_entries);
  if (!decoded.ok()) {
    return Reject(id, decoded.status().code(), std::string(decoded.status().message()));
  }
  const rdma::ConnectRequest req = *decoded;
  const bool peer = (req.flags & rdma::kConnectFlagPeer) != 0;
  if (conns_.size() >= ctx_.opts.max_connections) {
    return Reject(id, absl::StatusCode::kResourceExhausted,
                  absl::StrCat("connection limit ", ctx_.opts.max_connections, " reached"));
  }
  auto dev = DeviceFor(id);
  if (!dev.ok()) return Reject(id, absl::StatusCode::kUnavailable, dev.status().ToString());
  const std::uint32_t conn_id = next_conn_id_++;
  auto c = std::make_unique<Connection>(ctx_, remote_, conn_id, peer, *dev,
                                        rdma::RdmaChannel::FromConnectRequest(id), req);
  rdma::ConnectReply rep{};
  rep.magic = rdma::kRdmaMagic;
  rep.version = rdma::kRdmaVersion;
  rep.connection_id = conn_id;
  rep.max_regions = ctx_.opts.max_regions_per_connection;
  if (absl::Status s = c->SetUp(rep); !s.ok()) {
    // The channel owns the id now: the connection's destructor destroys QP, CQ and the id.
    c->Reject(ErrorReply(s.code(), std::string(s.message())));
    ctx_.Count([](RdmaListenerStats& st) { ++st.rejected; });
    ctx_.Log(absl::StrCat("connection setup failed: ", s.ToString()));
    return;
  }
  ctx_.Count([](RdmaListenerStats& st) {
    ++st.accepted;
    ++st.connected;
  });
  ctx_.Log(peer ? absl::StrCat("connection ", conn_id, ": ringd peer")
                : absl::StrCat("connection ", conn_id, ": sq ", req.sq_entries, ", cq ",
                               req.cq_entries));
  conns_[conn_id] = std::move(c);
  changed_ = true;
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
        c->OnEstablished();
        break;
      case RDMA_CM_EVENT_DISCONNECTED:
      case RDMA_CM_EVENT_TIMEWAIT_EXIT:
      case RDMA_CM_EVENT_CONNECT_ERROR:
      case RDMA_CM_EVENT_UNREACHABLE:
      case RDMA_CM_EVENT_REJECTED:
      case RDMA_CM_EVENT_DEVICE_REMOVAL:
        c->OnDisconnected();
        break;
      default:
        break;
    }
  }
}

bool RdmaListener::Impl::Pass() {
  peers_.Poll();
  for (auto& [id, c] : conns_) c->Poll();
  bool worked = ctx_.ready.RunAll();
  for (auto& [id, c] : conns_) worked |= c->StartWork();
  worked |= ctx_.ready.RunAll();
  return worked;
}

void RdmaListener::Impl::Housekeeping(absl::Time now) {
  // An op past its deadline: its QP's owner goes (the work request may still move data).
  for (QpOwner* owner : ctx_.ops.Expire(now)) {
    owner->Abort(absl::DeadlineExceededError(absl::StrCat(
        "RDMA op timed out after ", absl::FormatDuration(ctx_.opts.op_timeout))));
  }
  for (auto& [id, c] : conns_) c->Tick(now);
  ctx_.ready.RunAll();
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (!it->second->reapable()) {
      ++it;
      continue;
    }
    grants_.RevokeConnection(it->first);
    it = conns_.erase(it);  // QP, CQ, staging, cm_id
    ctx_.Count([](RdmaListenerStats& s) { --s.connected; });
    changed_ = true;
  }
  Publish(now);
}

void RdmaListener::Impl::Publish(absl::Time now) {
  if (!changed_ && now - published_ < absl::Milliseconds(100)) return;
  changed_ = false;
  published_ = now;
  std::vector<RdmaConnectionInfo> infos;
  for (auto& [id, c] : conns_) {
    if (c->dead()) continue;
    RdmaConnectionInfo i;
    i.id = id;
    i.peer = c->peer();
    i.remote = c->remote_address();
    i.sq_entries = c->request().sq_entries;
    i.cq_entries = c->request().cq_entries;
    i.regions = static_cast<std::uint32_t>(c->region_count());
    i.descriptors = c->descriptors();
    i.inline_descriptors = c->inline_descriptors();
    i.pending = c->pending_descriptors();
    i.busy = c->waiting();
    infos.push_back(std::move(i));
  }
  ctx_.Count([&](RdmaListenerStats& s) {
    s.connections = std::move(infos);
    s.grants = static_cast<std::uint32_t>(grants_.size());
    s.peer_links = static_cast<std::uint32_t>(peers_.size());
    s.ops_in_flight = static_cast<std::uint32_t>(ctx_.ops.size());
  });
}

void RdmaListener::Impl::Run() {
  // Sleep in poll() only after a whole poll window without progress; inside the window, spin on
  // the CQs (ibv_poll_cq: no system call on rxe or hardware) and look at the fds now and then.
  bool sleep = true;
  absl::Time spin_until = absl::InfinitePast();
  std::uint32_t passes = 0;
  std::vector<int> peer_fds;
  while (!stop_.load(std::memory_order_relaxed)) {
    if (sleep || (++passes & 255) == 0) {
      std::vector<pollfd> fds;
      fds.push_back({events_->fd, POLLIN, 0});
      fds.push_back({wake_fd_, POLLIN, 0});
      for (auto& [ctx, d] : devices_) fds.push_back({d->comp->fd, POLLIN, 0});
      peer_fds.clear();
      peers_.AppendPollFds(&peer_fds);
      for (int fd : peer_fds) fds.push_back({fd, POLLIN, 0});
      // The timeout is a safety net (a missed CQ event delays a client by at most this long)
      // and the resolution of the deadlines.
      (void)::poll(fds.data(), fds.size(), sleep ? 100 : 0);
      std::uint64_t drained = 0;
      (void)!read(wake_fd_, &drained, sizeof drained);  // non-blocking; a stop or a peer link
      HandleCmEvents();
      for (auto& [ctx, d] : devices_) {
        ibv_cq* cq = nullptr;
        void* cq_ctx = nullptr;
        // Drain and ack every CQ event now: we poll all connections below anyway, and an acked
        // event never blocks ibv_destroy_cq. (The channel fd is non-blocking.)
        while (ibv_get_cq_event(d->comp, &cq, &cq_ctx) == 0) ibv_ack_cq_events(cq, 1);
      }
    }
    bool worked = Pass();
    absl::Time now = absl::Now();
    if (worked) spin_until = now + ctx_.opts.poll_window;
    sleep = now >= spin_until;
    if (sleep) {
      // About to sleep: arm every CQ, then poll once more. Anything that arrived meanwhile is
      // handled now and keeps us awake.
      for (auto& [id, c] : conns_) (void)c->ArmCq();
      peers_.Arm();
      if (Pass()) {
        spin_until = absl::Now() + ctx_.opts.poll_window;
        sleep = false;
      }
    }
    Housekeeping(now);
  }
  Shutdown();
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
  impl_.reset();  // every connection, the peer links, then the listen id
}

RdmaListenerStats RdmaListener::stats() const {
  return impl_ != nullptr ? impl_->Stats() : RdmaListenerStats{};
}

}  // namespace pinring::ringd
