// One side of the two-guest remote data movement test (vm_rdma_remote.sh). Both sides talk to
// their own ringd over the rdma transport and rendezvous through files in a shared directory.
//
//   rdma_remote_peer owner  ADDR PORT DIR   (guest B) creates a region, exports it, writes
//                                           DIR/token; waits for DIR/written; verifies the bytes
//                                           (its own view and ringd's CHECKSUM); revokes the
//                                           grant, writes DIR/revoked; waits for DIR/a_done.
//   rdma_remote_peer writer ADDR PORT DIR   (guest A) waits for DIR/token; REMOTE_WRITEs a known
//                                           pattern into B's region (through A's ringd, forwarded
//                                           to B's ringd), REMOTE_READs it back and compares;
//                                           writes DIR/written; waits for DIR/revoked; checks
//                                           that a REMOTE_WRITE now completes unknown-region;
//                                           writes DIR/a_done.
// Exit 0 and a final "PASS <role>" line when every check held.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "pinring/rdma_queue.h"

namespace {

using namespace pinring;

constexpr std::size_t kSize = 192 * 1024;  // three peer chunks
constexpr absl::Duration kWait = absl::Seconds(400);

int Die(const std::string& why) {
  std::fprintf(stderr, "FAIL: %s\n", why.c_str());
  return 1;
}

void Pattern(std::span<std::byte> b) {
  for (std::size_t i = 0; i < b.size(); ++i) {
    b[i] = static_cast<std::byte>((i * 131 + (i >> 8) * 7 + 0x3c) & 0xff);
  }
}

bool WaitFile(const std::string& path, std::string* content) {
  const absl::Time deadline = absl::Now() + kWait;
  while (absl::Now() < deadline) {
    std::ifstream f(path);
    if (f) {
      std::stringstream ss;
      ss << f.rdbuf();
      if (content != nullptr) *content = ss.str();
      return true;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return false;
}

bool PutFile(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << content;
    if (!f) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;  // appears whole or not at all
}

absl::StatusOr<Completion> Run(RdmaQueue& q, const Descriptor& d) {
  return q.SubmitAndWait(d, absl::Seconds(120));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) return Die("usage: rdma_remote_peer owner|writer ADDR PORT DIR");
  const std::string role = argv[1], dir = argv[4];
  RdmaQueueOptions o;
  o.address = argv[2];
  std::uint32_t port = 0;
  if (!absl::SimpleAtoi(argv[3], &port) || port == 0 || port > 65535) return Die("bad port");
  o.port = static_cast<std::uint16_t>(port);
  o.sq_entries = 8;
  o.timeout = absl::Seconds(60);
  auto q = RdmaQueue::Connect(o);
  if (!q.ok()) return Die(q.status().ToString());
  std::fprintf(stderr, "%s: connected to ringd %s:%u on %s\n", role.c_str(), argv[2], port,
               (*q)->device_name().c_str());
  auto region = (*q)->CreateRegion(kSize);
  if (!region.ok()) return Die(region.status().ToString());
  std::vector<std::byte> expected(kSize);
  Pattern(expected);

  if (role == "owner") {
    std::memset((*region)->data(), 0, kSize);
    auto token = (*q)->ExportRegion(*region);
    if (!token.ok()) return Die(token.status().ToString());
    std::fprintf(stderr, "owner: grant %s\n", FormatGrantToken(*token).c_str());
    if (!PutFile(dir + "/token", FormatGrantToken(*token))) return Die("cannot write token");
    if (!WaitFile(dir + "/written", nullptr)) return Die("writer never wrote");
    if (std::memcmp((*region)->data(), expected.data(), kSize) != 0) {
      return Die("owner: the bytes in my region are not the writer's pattern");
    }
    Descriptor d{};
    d.user_data = 1;
    d.opcode = static_cast<std::uint8_t>(Opcode::kChecksum);
    d.src_region = (*region)->handle();
    d.length = kSize;
    auto c = Run(**q, d);
    if (!c.ok()) return Die(c.status().ToString());
    if (c->status != 0 || c->result != Fnv1a64(expected))
      return Die("owner: ringd CHECKSUM differs");
    std::printf("owner: verified %zu bytes written from the other host\n", kSize);
    if (absl::Status s = (*q)->RevokeGrant(*token); !s.ok()) return Die(s.ToString());
    if (!PutFile(dir + "/revoked", "1")) return Die("cannot write revoked");
    if (!WaitFile(dir + "/a_done", nullptr)) return Die("writer never finished");
    std::printf("PASS owner\n");
    return 0;
  }
  if (role != "writer") return Die("role must be owner or writer");
  std::string text;
  if (!WaitFile(dir + "/token", &text)) return Die("no token from the owner");
  auto token = ParseGrantToken(text);
  if (!token.ok()) return Die(token.status().ToString());
  std::memcpy((*region)->data(), expected.data(), kSize);
  auto back = (*q)->CreateRegion(kSize);
  if (!back.ok()) return Die(back.status().ToString());
  auto w = Run(**q, RemoteWriteDescriptor(*token, 0, (*region)->handle(), 0, kSize, 7));
  if (!w.ok()) return Die(w.status().ToString());
  if (w->status != 0 || w->result != kSize) {
    return Die(std::string("REMOTE_WRITE: ") +
               CompletionStatusName(static_cast<CompletionStatus>(w->status)));
  }
  auto r = Run(**q, RemoteReadDescriptor(*token, 0, (*back)->handle(), 0, kSize, 8));
  if (!r.ok()) return Die(r.status().ToString());
  if (r->status != 0) {
    return Die(std::string("REMOTE_READ: ") +
               CompletionStatusName(static_cast<CompletionStatus>(r->status)));
  }
  if (std::memcmp((*back)->data(), expected.data(), kSize) != 0) {
    return Die("writer: REMOTE_READ brought back different bytes");
  }
  std::printf("writer: wrote and read back %zu bytes on the other host\n", kSize);
  if (!PutFile(dir + "/written", "1")) return Die("cannot write written");
  if (!WaitFile(dir + "/revoked", nullptr)) return Die("owner never revoked");
  auto x = Run(**q, RemoteWriteDescriptor(*token, 0, (*region)->handle(), 0, 64, 9));
  if (!x.ok()) return Die(x.status().ToString());
  if (x->status != static_cast<std::int32_t>(CompletionStatus::kUnknownRegion)) {
    return Die(std::string("after revoke: ") +
               CompletionStatusName(static_cast<CompletionStatus>(x->status)));
  }
  std::printf("writer: revoked grant completes unknown-region\n");
  if (!PutFile(dir + "/a_done", "1")) return Die("cannot write a_done");
  std::printf("PASS writer\n");
  return 0;
}
