#include "service/event_loop.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "pinring/status.h"
#include "service/fault_guard.h"
#include "service/log.h"

namespace pinring::ringd {
namespace {

enum OpKind { kListen, kSignal, kTimer, kClient, kDoorbell, kWaker };
constexpr std::uint64_t kCancelUserData = 0;  // CQEs of cancel requests carry no op
constexpr unsigned kRingEntries = 256;

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct EventLoop::PendingOp {
  int kind;
  std::uint64_t client;
  std::uint32_t queue;
  // What the kernel writes into: a doorbell counter, a signalfd_siginfo, or a timeout spec.
  alignas(8) unsigned char buf[sizeof(signalfd_siginfo)];
  __kernel_timespec ts;
};

EventLoop::EventLoop(const Config& config, std::unique_ptr<Backend> backend,
                     ListenSocket listener)
    : config_(config),
      backend_(std::move(backend)),
      listener_(std::move(listener)),
      tenants_(config.tenants) {}

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create(const Config& config,
                                                             std::unique_ptr<Backend> backend,
                                                             ListenSocket listener) {
  auto loop = std::unique_ptr<EventLoop>(new EventLoop(config, std::move(backend),
                                                       std::move(listener)));
  PINRING_RETURN_IF_ERROR(loop->Init());
  return loop;
}

absl::Status EventLoop::Init() {
  started_ns_ = NowNs();
  if (int rc = io_uring_queue_init(kRingEntries, &ring_, 0); rc < 0) {
    return pinring::ErrnoToStatus(-rc, "io_uring_queue_init (is io_uring disabled? see "
                                       "/proc/sys/kernel/io_uring_disabled)");
  }
  ring_ready_ = true;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  signal_fd_.reset(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_.valid()) return pinring::LastErrnoStatus("signalfd");
  for (int i = 0; i < config_.pollers; ++i) {
    auto p = std::make_unique<Poller>(i);
    PINRING_RETURN_IF_ERROR(p->Start());
    pollers_.push_back(std::move(p));
  }
  PINRING_ASSIGN_OR_RETURN(waker_, CompletionWaker::Create());
  PINRING_RETURN_IF_ERROR(FaultGuard::InstallHandler());
  reserve_fd_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!config_.admin_group.empty()) {
    // Looked up once: a group created later needs a restart (documented in ringd(8)).
    if (const group* g = getgrnam(config_.admin_group.c_str()); g != nullptr) {
      admin_gid_ = g->gr_gid;
      admin_gid_valid_ = true;
    }
  }
  ArmListen();
  if (waker_->fd() >= 0) ArmWaker();
  ArmSignal();
  ArmTimer();
  return absl::OkStatus();
}

EventLoop::~EventLoop() {
  for (auto& [id, c] : clients_) c->Teardown();
  clients_.clear();
  for (auto& p : pollers_) p->Stop();
  if (ring_ready_) io_uring_queue_exit(&ring_);  // cancels and waits for every request
  for (PendingOp* op : all_ops_) delete op;
  if (!listener_.activated && listener_.fd.valid()) unlink(config_.socket_path.c_str());
}

io_uring_sqe* EventLoop::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // Submission queue full: push what is queued to the kernel and take a fresh slot.
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;  // non-null: the SQ was just emptied
}

EventLoop::PendingOp* EventLoop::NewOp(int kind, std::uint64_t client, std::uint32_t queue) {
  auto* op = new PendingOp{};
  op->kind = kind;
  op->client = client;
  op->queue = queue;
  all_ops_.insert(op);
  return op;
}

void EventLoop::ArmListen() {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_poll_add(sqe, listener_.fd.get(), POLLIN);
  io_uring_sqe_set_data(sqe, NewOp(kListen));
}

void EventLoop::ArmSignal() {
  PendingOp* op = NewOp(kSignal);
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, signal_fd_.get(), op->buf, sizeof(signalfd_siginfo), 0);
  io_uring_sqe_set_data(sqe, op);
}

void EventLoop::ArmTimer() {
  PendingOp* op = NewOp(kTimer);
  op->ts.tv_sec = 0;
  op->ts.tv_nsec = 100 * 1000 * 1000;  // housekeeping every 100 ms
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_timeout(sqe, &op->ts, 0, 0);
  io_uring_sqe_set_data(sqe, op);
}

void EventLoop::ArmClient(ClientSession& c) {
  PendingOp* op = NewOp(kClient, c.id());
  io_uring_sqe* sqe = GetSqe();
  // Readiness, then recvmsg(MSG_DONTWAIT) ourselves: we need msg_flags (MSG_TRUNC, MSG_CTRUNC)
  // and every SCM_RIGHTS fd exactly as recvmsg(2) reports them.
  io_uring_prep_poll_add(sqe, c.socket_fd(), POLLIN);
  io_uring_sqe_set_data(sqe, op);
  client_ops_[c.id()] = op;
}

void EventLoop::ArmDoorbell(ClientSession& c, QueueServer& q) {
  PendingOp* op = NewOp(kDoorbell, c.id(), q.params().id);
  io_uring_sqe* sqe = GetSqe();
  // An async read, not poll+read(2): the client owns this eventfd and could drain it or clear
  // O_NONBLOCK between a poll and our read; inside io_uring the read can only wait, never block
  // the loop.
  io_uring_prep_read(sqe, q.doorbell_fd(), op->buf, sizeof(std::uint64_t), 0);
  io_uring_sqe_set_data(sqe, op);
  doorbell_ops_[&q] = op;
}

void EventLoop::ArmWaker() {
  // The waker's own io_uring (kernels without RWF_NOWAIT on eventfds): reap its finished writes
  // whenever it has completions.
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_poll_add(sqe, waker_->fd(), POLLIN);
  io_uring_sqe_set_data(sqe, NewOp(kWaker));
}

void EventLoop::CancelOp(PendingOp*& op) {
  if (op == nullptr) return;
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(op), 0);
  io_uring_sqe_set_data64(sqe, kCancelUserData);
  op = nullptr;  // the op itself is freed when its (cancelled) CQE arrives
}

void EventLoop::Attach(ClientSession& c, QueueServer* q) {
  if (q->params().doorbell == wire::DoorbellMode::kEventfd) {
    q->SetWaker(waker_.get());
    ArmDoorbell(c, *q);
    // Anything submitted before the read was armed: serve it in the next round.
    MarkReady(c.id(), q->params().id);
    return;
  }
  // Least-loaded poller.
  Poller* best = pollers_.front().get();
  for (auto& p : pollers_) {
    if (p->queue_count() < best->queue_count()) best = p.get();
  }
  best->Add(q);
  queue_poller_[q] = best;
}

void EventLoop::Detach(ClientSession& c, QueueServer* q) {
  if (auto it = doorbell_ops_.find(q); it != doorbell_ops_.end()) {
    CancelOp(it->second);
    doorbell_ops_.erase(it);
  }
  backlog_.erase({c.id(), q->params().id});
  ready_set_.erase({c.id(), q->params().id});  // its ready_ entry is skipped when reached
  if (auto it = queue_poller_.find(q); it != queue_poller_.end()) {
    it->second->Remove(q);  // returns once the poller no longer touches q
    queue_poller_.erase(it);
  }
  // Whatever still signals it from now on (Stop at shutdown) runs on this thread.
  q->SetWaker(waker_.get());
}

void EventLoop::MarkReady(std::uint64_t client_id, std::uint32_t queue_id) {
  if (ready_set_.insert({client_id, queue_id}).second) ready_.emplace_back(client_id, queue_id);
}

void EventLoop::ServeReady() {
  // One round: each queue ready now gets one budgeted pass; those with more work go to the back
  // of the next round, after the control plane's completions have been handled.
  std::vector<std::pair<std::uint64_t, std::uint32_t>> round;
  round.swap(ready_);
  for (const auto& key : round) {
    if (ready_set_.erase(key) == 0) continue;  // detached meanwhile
    auto it = clients_.find(key.first);
    if (it == clients_.end()) continue;
    switch (it->second->ServePass(key.second)) {
      case ServeState::kIdle:
        break;
      case ServeState::kMore:
        MarkReady(key.first, key.second);
        break;
      case ServeState::kCqFull:
        backlog_.insert(key);  // the timer retries: the client may reap meanwhile
        break;
    }
    if (stopping_) return;
  }
}

void EventLoop::Notify(const std::string& state) { sd_notify(0, state.c_str()); }

int EventLoop::Run() {
  Notify(absl::StrCat("READY=1\nSTATUS=listening on ", config_.socket_path, ", backend ",
                      backend_->name(), "\nMAINPID=", getpid()));
  RINGD_LOG(kInfo, "ready: socket ", listener_.activated ? "(systemd)" : config_.socket_path,
            ", backend ", backend_->name(), backend_->device().empty() ? "" : " on ",
            backend_->device(), ", ", config_.pollers, " poller(s)");
  while (!stopping_) {
    io_uring_submit(&ring_);
    io_uring_cqe* cqe = nullptr;
    // With eventfd queues ready, only look for completions; otherwise sleep until one arrives.
    int rc = ready_.empty() ? io_uring_wait_cqe(&ring_, &cqe) : io_uring_peek_cqe(&ring_, &cqe);
    if (rc == -EINTR) continue;
    if (rc == -EAGAIN && !ready_.empty()) {
      ServeReady();
      continue;
    }
    if (rc < 0) {
      RINGD_LOG(kError, "io_uring_wait_cqe: ", std::strerror(-rc));
      break;
    }
    // Reap everything available before submitting again.
    unsigned head;
    unsigned seen = 0;
    std::vector<std::pair<PendingOp*, int>> done;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      if (cqe->user_data != kCancelUserData) {
        done.emplace_back(reinterpret_cast<PendingOp*>(cqe->user_data), cqe->res);
      }
    }
    io_uring_cq_advance(&ring_, seen);
    for (auto& [op, res] : done) {
      OnCompletion(op, res);
      all_ops_.erase(op);
      delete op;
      if (stopping_) break;
    }
    if (!stopping_ && !ready_.empty()) ServeReady();
  }
  Shutdown();
  return 0;
}

void EventLoop::OnCompletion(PendingOp* op, int res) {
  switch (op->kind) {
    case kListen:
      if (!stopping_) {
        OnAccept();
        if (!listen_paused_) ArmListen();  // paused at EMFILE: the timer re-arms it
      }
      return;
    case kWaker:
      waker_->Reap();
      if (!stopping_) ArmWaker();
      return;
    case kSignal:
      OnSignal(op, res);
      return;
    case kTimer:
      OnTimer();
      ArmTimer();
      return;
    case kClient: {
      auto it = client_ops_.find(op->client);
      if (it == client_ops_.end() || it->second != op) return;  // stale: client gone
      client_ops_.erase(it);
      if (res < 0 || (res & (POLLERR | POLLNVAL)) != 0) {
        // POLLHUP alone still lets us read queued messages; OnClientReadable sees EOF.
        if (res < 0 || (res & POLLNVAL) != 0) {
          Disconnect(op->client, "socket error");
          return;
        }
      }
      OnClientReadable(op->client);
      return;
    }
    case kDoorbell: {
      auto cit = clients_.find(op->client);
      if (cit == clients_.end()) return;
      QueueServer* q = cit->second->FindQueue(op->queue);
      if (q == nullptr) return;
      auto dit = doorbell_ops_.find(q);
      if (dit == doorbell_ops_.end() || dit->second != op) return;  // stale
      doorbell_ops_.erase(dit);
      if (res < 0) {
        RINGD_LOG_LIMITED(kWarning, "client ", op->client, " queue ", op->queue,
                          ": doorbell read failed: ", std::strerror(-res),
                          "; queue no longer woken");
        return;
      }
      Counters::Add(q->counters()->doorbells);
      ArmDoorbell(*cit->second, *q);
      MarkReady(op->client, op->queue);
      return;
    }
  }
}

bool EventLoop::IsAdmin(int fd, const PeerCred& cred) const {
  if (cred.uid == 0 || cred.uid == geteuid()) return true;
  if (!admin_gid_valid_) return false;
  if (cred.gid == admin_gid_) return true;
  // Supplementary groups of the peer, as the kernel recorded them at connect (SO_PEERGROUPS).
  gid_t groups[256];
  socklen_t len = sizeof groups;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) return false;
  for (socklen_t i = 0; i < len / sizeof(gid_t); ++i) {
    if (groups[i] == admin_gid_) return true;
  }
  return false;
}

void EventLoop::OnAccept() {
  while (true) {
    UniqueFd fd(accept4(listener_.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EMFILE || err == ENFILE) {
        RefuseForLackOfFds(err);
        return;
      }
      if (err != EAGAIN && err != EWOULDBLOCK) {
        RINGD_LOG_LIMITED(kWarning, "accept4: ", std::strerror(err));
      }
      return;
    }
    ucred uc{};
    socklen_t len = sizeof uc;
    PeerCred cred;
    if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
      cred = {uc.pid, uc.uid, uc.gid};
    }
    const bool admin = IsAdmin(fd.get(), cred);
    absl::Status admitted = tenants_.AdmitConnection(cred.uid, admin);
    if (!admitted.ok()) {
      RINGD_LOG_LIMITED(kWarning, "refusing a connection of pid ", cred.pid, " uid ", cred.uid,
                        ": ", admitted.message());
      // Kept only until its Hello is answered with the reason, and only a few at a time: a
      // flood past the limit must not hold fds of its own.
      if (refused_pending_ >= kAdminReserveConnections * 4) {
        wire::ShutdownNotice n{};
        n.reason = wire::ToReplyStatus(admitted);
        auto m = wire::MakeMessage(wire::MessageType::kShutdownNotice, 0, n);
        (void)send(fd.get(), &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL);
        continue;  // fd closes here
      }
      ++refused_pending_;
    }
    const std::uint64_t id = next_client_id_++;
    ++accepted_;
    auto session = std::make_unique<ClientSession>(id, std::move(fd), cred, admin,
                                                   std::move(admitted), config_, backend_.get(),
                                                   this, &tenants_);
    ArmClient(*session);
    clients_.emplace(id, std::move(session));
  }
}

void EventLoop::RefuseForLackOfFds(int err) {
  // Out of fds: the listener stays readable, so re-arming it now would spin. Use the reserve fd
  // to take one connection off the backlog and tell it why, then stop accepting until the next
  // timer tick (100 ms).
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  const absl::Status why = absl::ResourceExhaustedError(absl::StrCat(
      "ringd is out of file descriptors (", std::strerror(err), ", RLIMIT_NOFILE ", rl.rlim_cur,
      "): raise LimitNOFILE in ringd.service, or lower --max_connections"));
  RINGD_LOG_LIMITED(kWarning, "accept4: ", why.message());
  if (reserve_fd_.valid()) {
    reserve_fd_.reset();
    UniqueFd fd(accept4(listener_.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (fd.valid()) {
      wire::ShutdownNotice n{};
      n.reason = wire::ToReplyStatus(why);
      auto m = wire::MakeMessage(wire::MessageType::kShutdownNotice, 0, n);
      (void)send(fd.get(), &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    fd.reset();
    reserve_fd_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
  listen_paused_ = true;
}

void EventLoop::OnSignal(PendingOp* op, int res) {
  if (res != static_cast<int>(sizeof(signalfd_siginfo))) {
    ArmSignal();
    return;
  }
  signalfd_siginfo si;
  std::memcpy(&si, op->buf, sizeof si);
  if (si.ssi_signo == SIGHUP) {
    RINGD_LOG(kInfo, "SIGHUP: ", clients_.size(), " client(s) connected; nothing to reload");
    ArmSignal();
    return;
  }
  RINGD_LOG(kInfo, "signal ", si.ssi_signo, " from pid ", si.ssi_pid, ": shutting down");
  stopping_ = true;
}

void EventLoop::OnTimer() {
  // Eventfd queues that stalled on a full CQ: the client may have reaped since.
  for (auto [cid, qid] : backlog_) MarkReady(cid, qid);
  backlog_.clear();
  if (listen_paused_ && !stopping_) {
    listen_paused_ = false;
    ArmListen();
  }
  // Connections that never completed Hello hold an fd and a slot: close them.
  const std::int64_t deadline = NowNs() - std::int64_t{config_.handshake_timeout_ms} * 1'000'000;
  std::vector<std::uint64_t> stale;
  for (const auto& [id, c] : clients_) {
    if (!c->hello_done() && c->accepted_ns() < deadline) stale.push_back(id);
  }
  for (std::uint64_t id : stale) {
    // The timeout bounds the client, not ringd: a Hello already queued on the socket counts,
    // even when ringd was too busy (a long teardown, a stopped process) to read it before this
    // tick. Read what is queued first, without blocking; the armed poll stays as it is.
    ClientSession& c = *clients_.at(id);
    if (!c.OnReadable()) {
      Disconnect(id, "closed or misbehaved");
      continue;
    }
    if (c.hello_done()) continue;
    Disconnect(id, absl::StrCat("no Hello within --handshake_timeout_ms=",
                                config_.handshake_timeout_ms));
  }
}

void EventLoop::OnClientReadable(std::uint64_t client_id) {
  auto it = clients_.find(client_id);
  if (it == clients_.end()) return;
  if (!it->second->OnReadable()) {
    Disconnect(client_id, "closed or misbehaved");
    return;
  }
  ArmClient(*it->second);
}


void EventLoop::Disconnect(std::uint64_t client_id, absl::string_view why) {
  auto it = clients_.find(client_id);
  if (it == clients_.end()) return;
  ClientSession& c = *it->second;
  if (auto op = client_ops_.find(client_id); op != client_ops_.end()) {
    CancelOp(op->second);
    client_ops_.erase(op);
  }
  c.Teardown();  // detaches queues (cancelling their doorbell reads), unpins, unmaps, closes
  retired_ += c.CountersNow();
  if (c.refused() && refused_pending_ > 0) --refused_pending_;
  RINGD_LOG_LIMITED(kInfo, "client ", client_id, " (pid ", c.cred().pid, ") disconnected: ", why);
  clients_.erase(it);
}

void EventLoop::Shutdown() {
  Notify("STOPPING=1\nSTATUS=stopping: notifying clients");
  for (auto& [id, c] : clients_) c->NotifyShutdown("ringd is stopping");
  // The completion-eventfd wakes of NotifyShutdown may still be in the kernel's worker: let them
  // land before the rings go away (bounded: a client that saturated its counter gets none).
  waker_->Drain(/*timeout_ms=*/500);
  for (auto& [id, c] : clients_) {
    c->Teardown();
    retired_ += c->CountersNow();
  }
  clients_.clear();
  client_ops_.clear();
  doorbell_ops_.clear();
  for (auto& p : pollers_) p->Stop();
  RINGD_LOG(kInfo, "stopped; every registration released");
}

std::string EventLoop::StatsJson(bool admin, uid_t uid) {
  // The stats policy (ringd(8)): an admin peer sees every client and the daemon's totals; any
  // other peer sees the clients of its own uid and that uid's usage, nothing of other tenants.
  nlohmann::json j;
  j["scope"] = admin ? "all" : absl::StrCat("uid ", uid);
  j["ringd"] = {{"pid", getpid()},
                {"backend", std::string(backend_->name())},
                {"device", backend_->device()},
                {"pollers", config_.pollers},
                {"uptime_s", (NowNs() - started_ns_) / 1'000'000'000}};
  CountersSnapshot total = admin ? retired_ : CountersSnapshot{};
  std::uint64_t registered = 0;
  std::uint64_t odp = 0;
  std::uint64_t shown = 0;
  j["clients"] = nlohmann::json::array();
  for (const auto& [id, c] : clients_) {
    if (!admin && c->cred().uid != uid) continue;
    if (!c->hello_done()) continue;  // not a client yet (or refused)
    total += c->CountersNow();
    registered += c->pinned_bytes();
    odp += c->odp_bytes();
    ++shown;
    j["clients"].push_back(c->ToJson());
  }
  const TenantLimits& lim = tenants_.limits();
  if (admin) {
    j["ringd"]["clients_connected"] = clients_.size();
    j["ringd"]["clients_accepted"] = accepted_;
    j["ringd"]["memory_faults_absorbed"] = FaultGuard::faults_absorbed();
    j["ringd"]["wake_method"] = CompletionWaker::Method();
    j["limits"] = {{"max_connections", lim.max_connections},
                   {"max_connections_per_uid", lim.max_connections_per_uid},
                   {"max_queues_total", lim.max_queues_total},
                   {"max_queues_per_uid", lim.max_queues_per_uid},
                   {"max_registered_bytes", lim.max_registered_bytes},
                   {"max_registered_bytes_per_uid", lim.max_registered_bytes_per_uid}};
  } else {
    j["ringd"]["clients_connected"] = shown;
    const TenantTable::Usage u = tenants_.ForUid(uid);
    j["uid_usage"] = {{"uid", uid},
                      {"connections", u.connections},
                      {"queues", u.queues},
                      {"registered_bytes", u.registered_bytes},
                      {"max_connections_per_uid", lim.max_connections_per_uid},
                      {"max_queues_per_uid", lim.max_queues_per_uid},
                      {"max_registered_bytes_per_uid", lim.max_registered_bytes_per_uid}};
  }
  j["global"] = total.ToJson();
  j["global"]["registered_bytes"] = registered;
  j["global"]["odp_bytes"] = odp;  // of registered_bytes, on demand (not pinned)
  for (const auto& [key, section] : sections_) j[key] = section(admin);
  return j.dump();
}

}  // namespace pinring::ringd
