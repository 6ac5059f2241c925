// pinring-hello: the smallest complete ringlib client.
//
// Connects to ringd, creates two data regions and a queue, then submits NOP, FILL, COPY and
// CHECKSUM and checks every result against what this process can see in the shared memory:
// FILL's bytes, COPY's bytes, and CHECKSUM's value against Fnv1a64 computed locally.
// Exits 0 only if every step succeeded.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/help.h"
#include "pinring/client.h"

ABSL_FLAG(std::string, socket, "",
          "ringd's socket (default: $PINRING_SOCKET, else /run/pinring/ringd.sock)");
ABSL_FLAG(std::uint64_t, size, 64 * 1024, "bytes per data region");
ABSL_FLAG(std::string, fork_mode, "dontfork",
          "fork-safety mode of the regions: kernel, dontfork, readonly, write-for-read, shared");
ABSL_FLAG(bool, huge_pages, false, "back the regions with huge pages (needs vm.nr_hugepages)");

namespace {

int Fail(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "pinring-hello: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

void Print(const char* op, const pinring::Completion& c) {
  std::printf("  %-9s user_data=%llu status=%s result=%llu (0x%llx)\n", op,
              static_cast<unsigned long long>(c.user_data),
              pinring::CompletionStatusName(static_cast<pinring::CompletionStatus>(c.status)),
              static_cast<unsigned long long>(c.result), static_cast<unsigned long long>(c.result));
}

// Submits `d`, waits, prints, and requires status ok.
absl::Status Run(pinring::Queue& q, const char* op, const pinring::Descriptor& d) {
  auto c = q.SubmitAndWait(d, absl::Seconds(10));
  if (!c.ok()) return c.status();
  Print(op, *c);
  if (c->status != static_cast<std::int32_t>(pinring::CompletionStatus::kOk)) {
    return absl::InternalError(absl::StrCat(op, " completed with status ",
                                            pinring::CompletionStatusName(
                                                static_cast<pinring::CompletionStatus>(c->status))));
  }
  if (c->user_data != d.user_data) return absl::InternalError("user_data was not echoed");
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  static constexpr char kUsage[] =
      "Connects to ringd and runs NOP, FILL, COPY and CHECKSUM, verifying every result.\n"
      "Usage: pinring-hello [--socket=PATH] [--size=BYTES] [--fork_mode=MODE] [--huge_pages]";
  if (pinring_examples::HandleHelp(argc, argv, kUsage)) return 0;
  absl::SetProgramUsageMessage(kUsage);
  absl::ParseCommandLine(argc, argv);

  const auto mode = pinring::ParseForkMode(absl::GetFlag(FLAGS_fork_mode));
  if (!mode) {
    std::fprintf(stderr, "pinring-hello: unknown --fork_mode=%s\n",
                 absl::GetFlag(FLAGS_fork_mode).c_str());
    return 2;
  }
  const std::uint64_t size = absl::GetFlag(FLAGS_size);
  if (size < 64) {
    std::fprintf(stderr, "pinring-hello: --size must be at least 64\n");
    return 2;
  }

  // 1. Connect: the versioned handshake tells us ringd's backend and limits.
  pinring::ClientOptions copts;
  copts.socket_path = absl::GetFlag(FLAGS_socket);
  copts.name = "pinring-hello";
  auto client = pinring::Client::Connect(copts);
  if (!client.ok()) return Fail("connect", client.status());
  const pinring::ServerInfo& info = client->info();
  std::printf("connected to ringd at %s: client %u, backend %s%s%s, protocol v%u\n",
              info.socket_path.c_str(), info.client_id, info.backend.c_str(),
              info.device.empty() ? "" : ", device ", info.device.c_str(), info.version);

  // 2. Two data regions ringd maps and registers; a queue with an eventfd doorbell.
  pinring::RegionOptions ropts;
  ropts.size = size;
  ropts.fork_mode = *mode;
  ropts.huge_pages = absl::GetFlag(FLAGS_huge_pages);
  auto src = client->CreateRegion(ropts);
  if (!src.ok()) return Fail("create source region", src.status());
  auto dst = client->CreateRegion(ropts);
  if (!dst.ok()) return Fail("create destination region", dst.status());
  std::printf("regions: src handle %u, dst handle %u, %llu bytes each, fork mode %s\n",
              src->handle(), dst->handle(), static_cast<unsigned long long>(size),
              std::string(pinring::ForkModeName(*mode)).c_str());
  auto queue = client->CreateQueue({});
  if (!queue.ok()) return Fail("create queue", queue.status());
  std::printf("queue %u: %u submission / %u completion entries\n", queue->id(),
              queue->sq_entries(), queue->cq_entries());

  // 3. NOP.
  if (auto s = Run(*queue, "NOP", pinring::MakeNop(1)); !s.ok()) return Fail("NOP", s);

  // 4. FILL the first half of dst with 0x5a; the device writes, we read the shared pages.
  const std::uint64_t half = size / 2;
  if (auto s = Run(*queue, "FILL", pinring::MakeFill(dst->handle(), 0, half, 0x5a, 2)); !s.ok()) {
    return Fail("FILL", s);
  }
  for (std::uint64_t i = 0; i < half; ++i) {
    if (dst->data()[i] != std::byte{0x5a}) {
      return Fail("FILL", absl::DataLossError(absl::StrCat("dst byte ", i, " is not 0x5a")));
    }
  }
  std::printf("  FILL verified: %llu bytes of 0x5a\n", static_cast<unsigned long long>(half));

  // 5. COPY: we write a pattern into src, the device copies it into the second half of dst.
  for (std::uint64_t i = 0; i < half; ++i) {
    src->data()[i] = static_cast<std::byte>((i * 131 + 7) & 0xff);
  }
  if (auto s = Run(*queue, "COPY", pinring::MakeCopy(src->handle(), 0, dst->handle(), half, half, 3));
      !s.ok()) {
    return Fail("COPY", s);
  }
  if (std::memcmp(src->data(), dst->data() + half, half) != 0) {
    return Fail("COPY", absl::DataLossError("dst does not hold the copied bytes"));
  }
  std::printf("  COPY verified: %llu bytes\n", static_cast<unsigned long long>(half));

  // 6. CHECKSUM of all of dst as the device sees it, against our own view of the same bytes.
  auto c = queue->SubmitAndWait(pinring::MakeChecksum(dst->handle(), 0, size, 4), absl::Seconds(10));
  if (!c.ok()) return Fail("CHECKSUM", c.status());
  Print("CHECKSUM", *c);
  const std::uint64_t expected = pinring::Fnv1a64(dst->bytes());
  if (c->status != 0 || c->result != expected) {
    return Fail("CHECKSUM", absl::DataLossError(absl::StrCat(
                                "device checksum 0x", absl::Hex(c->result), " != local 0x",
                                absl::Hex(expected))));
  }
  std::printf("  CHECKSUM verified: matches Fnv1a64 computed locally (0x%llx)\n",
              static_cast<unsigned long long>(expected));

  std::printf("pinring-hello: all 4 operations verified\n");
  return 0;
}
