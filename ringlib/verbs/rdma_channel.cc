#include "verbs/rdma_channel.h"

#include "verbs/work_request.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <rdma/rdma_cma.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "wire/rdma_wire.h"
#include "pinring/status.h"

namespace pinring::rdma {
namespace {

int TimeoutMs(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 0;
  const int64_t ms = absl::ToInt64Milliseconds(d);
  return ms > 1000 * 1000 ? 1000 * 1000 : static_cast<int>(ms) + 1;
}

absl::Status SetNonBlocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return pinring::LastErrnoStatus("fcntl");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RdmaChannel>> RdmaChannel::Resolve(const std::string& host,
                                                                  std::uint16_t port,
                                                                  absl::Duration timeout) {
  auto ch = std::unique_ptr<RdmaChannel>(new RdmaChannel());
  ch->events_ = rdma_create_event_channel();
  if (ch->events_ == nullptr) {
    return pinring::LastErrnoStatus(
        "rdma_create_event_channel (is rdma_ucm loaded? /dev/infiniband/rdma_cm)");
  }
  PINRING_RETURN_IF_ERROR(SetNonBlocking(ch->events_->fd));
  if (rdma_create_id(ch->events_, &ch->id_, ch.get(), RDMA_PS_TCP) != 0) {
    return pinring::LastErrnoStatus("rdma_create_id");
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res); rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve '", host, "': ", gai_strerror(rc)));
  }
  const int rc = rdma_resolve_addr(ch->id_, nullptr, res->ai_addr, TimeoutMs(timeout));
  const int err = errno;
  freeaddrinfo(res);
  if (rc != 0) return pinring::ErrnoToStatus(err, absl::StrCat("rdma_resolve_addr(", host, ")"));
  PINRING_RETURN_IF_ERROR(
      ch->WaitEvent(RDMA_CM_EVENT_ADDR_RESOLVED, timeout, nullptr).status());
  if (rdma_resolve_route(ch->id_, TimeoutMs(timeout)) != 0) {
    return pinring::LastErrnoStatus("rdma_resolve_route");
  }
  PINRING_RETURN_IF_ERROR(
      ch->WaitEvent(RDMA_CM_EVENT_ROUTE_RESOLVED, timeout, nullptr).status());
  if (ch->id_->verbs == nullptr) {
    return absl::UnavailableError(absl::StrCat("no RDMA device routes to ", host, "; ",
                                               kNoDeviceFix));
  }
  return ch;
}

std::unique_ptr<RdmaChannel> RdmaChannel::FromConnectRequest(rdma_cm_id* id) {
  auto ch = std::unique_ptr<RdmaChannel>(new RdmaChannel());
  ch->id_ = id;
  return ch;
}

RdmaChannel::~RdmaChannel() {
  DestroyQp();
  if (id_ != nullptr) rdma_destroy_id(id_);
  if (events_ != nullptr) rdma_destroy_event_channel(events_);
}

ibv_context* RdmaChannel::verbs() const { return id_ != nullptr ? id_->verbs : nullptr; }
int RdmaChannel::port_num() const { return id_ != nullptr ? id_->port_num : 1; }

absl::Status RdmaChannel::CreateQp(VerbsDevice& dev, const QpOptions& opts) {
  if (dev.context() != verbs()) {
    return absl::FailedPreconditionError("RdmaChannel::CreateQp: PD on another device context");
  }
  ibv_comp_channel* comp = opts.comp_channel;
  if (comp == nullptr) {
    own_comp_ = ibv_create_comp_channel(dev.context());
    if (own_comp_ == nullptr) return pinring::LastErrnoStatus("ibv_create_comp_channel");
    PINRING_RETURN_IF_ERROR(SetNonBlocking(own_comp_->fd));
    comp = own_comp_;
  }
  const int cqe = static_cast<int>(opts.send_depth + opts.recv_depth);
  cq_ = ibv_create_cq(dev.context(), cqe, opts.cq_context, comp, 0);
  if (cq_ == nullptr) return pinring::LastErrnoStatus("ibv_create_cq");
  ibv_qp_init_attr init{};
  init.send_cq = cq_;
  init.recv_cq = cq_;
  init.qp_type = IBV_QPT_RC;
  init.cap.max_send_wr = opts.send_depth;
  init.cap.max_recv_wr = opts.recv_depth;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.sq_sig_all = 0;
  if (rdma_create_qp(id_, dev.pd(), &init) != 0) return pinring::LastErrnoStatus("rdma_create_qp");
  qp_ = id_->qp;
  return ArmCq();
}

void RdmaChannel::DestroyQp(unsigned unacked_cq_events) {
  if (qp_ != nullptr) {
    rdma_destroy_qp(id_);
    qp_ = nullptr;
  }
  if (cq_ != nullptr) {
    if (unacked_cq_events > 0) ibv_ack_cq_events(cq_, unacked_cq_events);
    ibv_destroy_cq(cq_);
    cq_ = nullptr;
  }
  if (own_comp_ != nullptr) {
    ibv_destroy_comp_channel(own_comp_);
    own_comp_ = nullptr;
  }
}

absl::StatusOr<int> RdmaChannel::WaitEvent(int expected, absl::Duration timeout,
                                           std::string* private_data) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    rdma_cm_event* ev = nullptr;
    if (rdma_get_cm_event(events_, &ev) == 0) {
      const int type = ev->event;
      const int status = ev->status;
      if (private_data != nullptr && ev->param.conn.private_data != nullptr) {
        private_data->assign(static_cast<const char*>(ev->param.conn.private_data),
                             ev->param.conn.private_data_len);
      }
      rdma_ack_cm_event(ev);
      if (type == expected) return type;
      if (type == RDMA_CM_EVENT_DISCONNECTED) disconnected_ = true;
      if (type == RDMA_CM_EVENT_REJECTED) {
        return absl::UnavailableError(absl::StrCat("connection rejected (status ", status, ")"));
      }
      return absl::UnavailableError(absl::StrCat("rdma_cm: expected ",
                                                 rdma_event_str(static_cast<rdma_cm_event_type>(expected)),
                                                 ", got ",
                                                 rdma_event_str(static_cast<rdma_cm_event_type>(type)),
                                                 " (status ", status, ")"));
    }
    if (errno != EAGAIN) return pinring::LastErrnoStatus("rdma_get_cm_event");
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "rdma_cm: no ", rdma_event_str(static_cast<rdma_cm_event_type>(expected)), " within ",
          absl::FormatDuration(timeout)));
    }
    pollfd p{events_->fd, POLLIN, 0};
    if (::poll(&p, 1, TimeoutMs(left)) < 0 && errno != EINTR) {
      return pinring::LastErrnoStatus("poll(rdma_cm)");
    }
  }
}

namespace {
// The connection parameters both sides send: 4 outstanding RDMA READs each way, 7 transport
// retries. Only the RNR retry count differs (see the callers).
rdma_conn_param ConnParam(absl::Span<const std::byte> private_data, std::uint8_t rnr_retry) {
  rdma_conn_param p{};
  p.private_data = private_data.data();
  p.private_data_len = static_cast<std::uint8_t>(private_data.size());
  p.responder_resources = 4;
  p.initiator_depth = 4;
  p.retry_count = 7;
  p.rnr_retry_count = rnr_retry;
  return p;
}
}  // namespace

absl::Status RdmaChannel::StartConnect(absl::Span<const std::byte> private_data) {
  // RNR retry 7 = infinite: a flooding client waits for ringd's receives, not ringd.
  rdma_conn_param p = ConnParam(private_data, 7);
  if (rdma_connect(id_, &p) != 0) return pinring::LastErrnoStatus("rdma_connect");
  return absl::OkStatus();
}

absl::Status RdmaChannel::Connect(absl::Span<const std::byte> private_data,
                                  absl::Duration timeout, std::string* reply) {
  if (absl::Status s = StartConnect(private_data); !s.ok()) return s;
  std::string data;
  auto st = WaitEvent(RDMA_CM_EVENT_ESTABLISHED, timeout, &data);
  if (reply != nullptr) *reply = data;
  return st.status();
}

absl::Status RdmaChannel::Accept(absl::Span<const std::byte> private_data) {
  // ringd's own sends (notifications) wait at most a bounded time for a client that stopped
  // reposting receives: 6 RNR retries, then the connection fails instead of stalling.
  rdma_conn_param p = ConnParam(private_data, 6);
  if (rdma_accept(id_, &p) != 0) return pinring::LastErrnoStatus("rdma_accept");
  return absl::OkStatus();
}

absl::Status RdmaChannel::Reject(absl::Span<const std::byte> private_data) {
  if (rdma_reject(id_, private_data.data(), static_cast<std::uint8_t>(private_data.size())) != 0) {
    return pinring::LastErrnoStatus("rdma_reject");
  }
  return absl::OkStatus();
}

void RdmaChannel::Disconnect() {
  if (id_ != nullptr) (void)rdma_disconnect(id_);
}

bool RdmaChannel::PollDisconnected() {
  if (events_ == nullptr || disconnected_) return disconnected_;
  rdma_cm_event* ev = nullptr;
  while (rdma_get_cm_event(events_, &ev) == 0) {
    const int type = ev->event;
    rdma_ack_cm_event(ev);
    if (type == RDMA_CM_EVENT_DISCONNECTED || type == RDMA_CM_EVENT_DEVICE_REMOVAL ||
        type == RDMA_CM_EVENT_TIMEWAIT_EXIT) {
      disconnected_ = true;
    }
  }
  return disconnected_;
}

absl::Status RdmaChannel::PostRecv(const MemoryRegion& mr, std::uint64_t off, std::uint32_t len,
                                   std::uint64_t wr_id) {
  ibv_sge sge{reinterpret_cast<std::uint64_t>(mr.addr()) + off, len, mr.lkey()};
  ibv_recv_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (int rc = ibv_post_recv(qp_, &wr, &bad); rc != 0) {
    return pinring::ErrnoToStatus(rc, "ibv_post_recv");
  }
  return absl::OkStatus();
}

namespace {
absl::Status PostOne(ibv_qp* qp, ibv_wr_opcode op, const MemoryRegion& local, std::uint64_t off,
                     std::uint32_t len, std::uint64_t remote_addr, std::uint32_t rkey,
                     std::uint64_t wr_id, bool signaled, std::uint32_t imm = 0) {
  if (qp == nullptr) return absl::FailedPreconditionError("no QP");
  if (off > local.length() || len > local.length() - off) {
    return absl::OutOfRangeError(absl::StrCat("local range outside the MR (off ", off, ", len ",
                                              len, ")"));
  }
  ibv_sge sge;
  ibv_send_wr wr;
  verbs::FillWorkRequest(op, reinterpret_cast<std::uint64_t>(local.addr()) + off, local.lkey(), len,
                         remote_addr, rkey, wr_id, signaled, &sge, &wr);
  if (op == IBV_WR_RDMA_WRITE_WITH_IMM) wr.imm_data = htonl(imm);
  ibv_send_wr* bad = nullptr;
  if (int rc = ibv_post_send(qp, &wr, &bad); rc != 0) {
    return pinring::ErrnoToStatus(rc, "ibv_post_send");
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status RdmaChannel::PostSend(const MemoryRegion& mr, std::uint64_t off, std::uint32_t len,
                                   std::uint64_t wr_id, bool signaled) {
  return PostOne(qp_, IBV_WR_SEND, mr, off, len, 0, 0, wr_id, signaled);
}

absl::Status RdmaChannel::PostWrite(const MemoryRegion& local, std::uint64_t off,
                                    std::uint32_t len, std::uint64_t remote_addr,
                                    std::uint32_t rkey, std::uint64_t wr_id, bool signaled) {
  return PostOne(qp_, IBV_WR_RDMA_WRITE, local, off, len, remote_addr, rkey, wr_id, signaled);
}

absl::Status RdmaChannel::PostWriteImm(const MemoryRegion& local, std::uint64_t off,
                                       std::uint32_t len, std::uint64_t remote_addr,
                                       std::uint32_t rkey, std::uint32_t imm, std::uint64_t wr_id,
                                       bool signaled) {
  return PostOne(qp_, IBV_WR_RDMA_WRITE_WITH_IMM, local, off, len, remote_addr, rkey, wr_id,
                 signaled, imm);
}

absl::Status RdmaChannel::PostRead(const MemoryRegion& local, std::uint64_t off,
                                   std::uint32_t len, std::uint64_t remote_addr,
                                   std::uint32_t rkey, std::uint64_t wr_id, bool signaled) {
  return PostOne(qp_, IBV_WR_RDMA_READ, local, off, len, remote_addr, rkey, wr_id, signaled);
}

absl::StatusOr<int> RdmaChannel::Poll(absl::Span<ibv_wc> out) {
  const int n = ibv_poll_cq(cq_, static_cast<int>(out.size()), out.data());
  if (n < 0) return absl::InternalError("ibv_poll_cq failed");
  return n;
}

int RdmaChannel::comp_fd() const { return own_comp_ != nullptr ? own_comp_->fd : -1; }

absl::Status RdmaChannel::ArmCq() {
  if (int rc = ibv_req_notify_cq(cq_, 0); rc != 0) {
    return pinring::ErrnoToStatus(rc, "ibv_req_notify_cq");
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RdmaChannel::WaitCqEvent(absl::Duration timeout) {
  if (own_comp_ == nullptr) return absl::FailedPreconditionError("shared completion channel");
  pollfd p{own_comp_->fd, POLLIN, 0};
  const int rc = ::poll(&p, 1, TimeoutMs(timeout));
  if (rc < 0 && errno != EINTR) return pinring::LastErrnoStatus("poll(comp_channel)");
  if (rc <= 0) return false;
  ibv_cq* cq = nullptr;
  void* ctx = nullptr;
  if (ibv_get_cq_event(own_comp_, &cq, &ctx) != 0) {
    if (errno == EAGAIN) return false;
    return pinring::LastErrnoStatus("ibv_get_cq_event");
  }
  ibv_ack_cq_events(cq, 1);
  PINRING_RETURN_IF_ERROR(ArmCq());
  return true;
}

}  // namespace pinring::rdma
