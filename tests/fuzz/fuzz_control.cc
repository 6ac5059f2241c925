// Fuzz target: ringd's control protocol, driven through the session state machine
// (ClientSession::OnReadable), not only the frame parser. Each input is a sequence of datagrams;
// each datagram carries 0..4 real fds of a kind the input picks (sealed and unsealed memfds of a
// chosen size, eventfds, a pipe, /dev/null), sent over a real SOCK_SEQPACKET pair to a session
// with the cpu backend. Replies are drained and framed-checked; a session that decides to
// disconnect is torn down and a fresh one takes the rest of the input. Any crash, sanitizer report
// or leaked fd is a finding.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "pinring/ring_format.h"
#include "wire/scm_rights.h"
#include "wire/wire_protocol.h"
#include "service/backend.h"
#include "service/client_session.h"
#include "service/config.h"
#include "service/tenant_table.h"

namespace pinring::ringd {
namespace {

// Serves nothing: Attach/Detach only bookkeep (the data plane has its own target).
class NullScheduler final : public QueueScheduler {
 public:
  void Attach(ClientSession&, QueueServer* q) override { q->ServeOnce(); }
  void Detach(ClientSession&, QueueServer*) override {}
  std::string StatsJson(bool admin, uid_t uid) override {
    return admin ? std::string(70000, 'x') : std::to_string(uid);  // also the memfd reply path
  }
};

struct Fixture {
  Fixture() {
    config.socket_path = "/nonexistent";
    config.limits.max_queues = 4;
    config.limits.max_regions = 4;
    config.limits.max_region_bytes = 1 << 20;
    config.limits.max_pinned_bytes = 4 << 20;
    config.tenants.max_connections = 4;
    config.tenants.max_connections_per_uid = 4;
    config.tenants.max_queues_total = 8;
    config.tenants.max_queues_per_uid = 8;
    config.tenants.max_registered_bytes = 8 << 20;
    config.tenants.max_registered_bytes_per_uid = 3 << 20;  // below the sum of two clients' budgets
    backend = MakeCpuBackend();
  }
  Config config;
  std::unique_ptr<Backend> backend;
  NullScheduler scheduler;
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

// One fd of the kind the input picks. `size` scales memfd sizes in pages.
int MakeFd(std::uint8_t kind, std::uint8_t size) {
  switch (kind % 7) {
    case 0: {  // a sealed memfd laid out as a queue (ring_format.h), rings 2..32 entries
      const std::uint32_t e = 2u << (size % 5);
      const QueueLayout l = ComputeQueueLayout(e, e);
      const int fd = memfd_create("fuzz-queue", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (fd < 0) return -1;
      (void)!ftruncate(fd, static_cast<off_t>(l.total_size));
      (void)!pwrite(fd, &l, sizeof l, 0);
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
      return fd;
    }
    case 1:
    case 2: {  // a memfd of `size` pages, sealed (1) or not (2)
      const int fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (fd < 0) return -1;
      (void)!ftruncate(fd, static_cast<off_t>(size) * 4096);
      if (kind % 7 == 1) fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
      return fd;
    }
    case 3:
      return eventfd(size, EFD_CLOEXEC | ((size & 1) ? EFD_NONBLOCK : 0));
    case 4: {
      int p[2];
      if (pipe2(p, O_CLOEXEC) != 0) return -1;
      close(p[1]);
      return p[0];
    }
    case 5:
      return open("/dev/null", O_RDONLY | O_CLOEXEC);
    default:
      return memfd_create("fuzz-unsealable", MFD_CLOEXEC);  // no MFD_ALLOW_SEALING
  }
}

void SendDatagram(int fd, std::span<const std::uint8_t> bytes, const std::vector<int>& fds) {
  (void)wire::SendWithFds(fd, bytes.data(), bytes.size(), fds, MSG_DONTWAIT | MSG_NOSIGNAL);
}

// Reads every reply; each must be a well-framed ringd message.
void DrainReplies(int fd) {
  static std::vector<std::byte> buf(wire::kMaxMessageSize + 1);
  while (true) {
    std::vector<int> fds;
    bool truncated = false;
    const ssize_t n = wire::RecvWithFds(fd, buf, &fds, &truncated, MSG_DONTWAIT);
    if (n <= 0) return;
    for (int f : fds) close(f);
    const std::size_t nfds = fds.size();
    auto h = wire::ParseHeader(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)), nfds);
    if (!h.ok()) {
      std::fprintf(stderr, "ringd sent a malformed reply: %s\n", std::string(h.status().message()).c_str());
      std::abort();
    }
  }
}

}  // namespace
}  // namespace pinring::ringd

namespace pinring::ringd {
// The session's stats (ringctl and StatsRequest show them) hold client-chosen names: they must
// still be one valid JSON object. Checked on the last session of one input in eight: the counters
// make the object large, and checking every session cost 10x the executions.
void CheckStats(const ClientSession& session) {
  const std::string text = session.ToJson().dump();  // throws on invalid UTF-8: a crash here
  if (!nlohmann::json::accept(text)) {
    std::fprintf(stderr, "session stats are not JSON: %s\n", text.c_str());
    std::abort();
  }
}
}  // namespace pinring::ringd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pinring;
  using namespace pinring::ringd;
  Fixture& f = F();
  TenantTable tenants(f.config.tenants);
  std::uint64_t next_id = 1;
  auto open_session = [&](int& client_end) -> std::unique_ptr<ClientSession> {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) std::abort();
    client_end = sv[1];
    const bool admin = (next_id & 1) != 0;
    absl::Status admitted = tenants.AdmitConnection(1000, admin);
    return std::make_unique<ClientSession>(next_id++, UniqueFd(sv[0]), PeerCred{1, 1000, 1000},
                                           admin, admitted, f.config, f.backend.get(),
                                           &f.scheduler, &tenants);
  };
  int client_fd = -1;
  auto session = open_session(client_fd);
  std::size_t pos = 0;
  int sessions = 1;
  while (pos + 4 <= size && sessions < 8) {
    // Record: [flags][len lo][len hi][nfds], then nfds x [kind][size], then the datagram
    // (len % 4096 bytes). flags bit 7 clear: magic, version and length are patched to be valid,
    // so most datagrams reach the handlers.
    const std::uint8_t flags = data[pos];
    const std::uint16_t len = static_cast<std::uint16_t>(data[pos + 1] | (data[pos + 2] << 8));
    const std::uint8_t nfds = data[pos + 3] % 5;
    pos += 4;
    std::vector<int> fds;
    for (std::uint8_t i = 0; i < nfds && pos + 2 <= size; ++i, pos += 2) {
      const int fd = MakeFd(data[pos], data[pos + 1]);
      if (fd >= 0) fds.push_back(fd);
    }
    const std::size_t n = std::min<std::size_t>(len % 4096, size - pos);
    std::vector<std::uint8_t> dgram(data + pos, data + pos + n);
    pos += n;
    if ((flags & 0x80) == 0 && dgram.size() >= sizeof(wire::MessageHeader)) {
      wire::MessageHeader h;
      std::memcpy(&h, dgram.data(), sizeof h);
      h.magic = wire::kMagic;
      h.version = wire::kVersion;
      h.type = static_cast<std::uint16_t>(h.type % 16);
      h.length = static_cast<std::uint32_t>(dgram.size());
      std::memcpy(dgram.data(), &h, sizeof h);
    }
    SendDatagram(client_fd, dgram, fds);
    for (int fd : fds) close(fd);
    const bool keep = session->OnReadable();
    DrainReplies(client_fd);
    if (!keep) {
      session->Teardown();
      session.reset();
      close(client_fd);
      session = open_session(client_fd);
      ++sessions;
    }
  }
  if (size % 8 == 0) CheckStats(*session);  // one input in eight (deterministic per input)
  session->Teardown();
  session.reset();
  close(client_fd);
  // Everything charged was released: connections, queues, bytes.
  if (tenants.total().connections != 0 || tenants.total().queues != 0 ||
      tenants.total().registered_bytes != 0) {
    std::fprintf(stderr, "tenant accounting leaked: %u connections, %u queues, %llu bytes\n",
                 tenants.total().connections, tenants.total().queues,
                 static_cast<unsigned long long>(tenants.total().registered_bytes));
    std::abort();
  }
  return 0;
}
