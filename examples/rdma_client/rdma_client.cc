// pinring-rdma-client: the rdma transport end to end. Connects to a ringd by address (same host or
// another), registers its own rings and two data regions under a fork mode, has ringd COPY,
// CHECKSUM and FILL them with RDMA READ/WRITE against this process's pinned memory, and verifies
// every byte. Exit status 0 = verified.
//
//   pinring-rdma-client --address=10.0.0.1 [--port=18515] [--size=1048576] [--fork_mode=kernel]
//                       [--wait=spin|sleep] [--rounds=4]
// See docs/rdma-transport.md for running it across two machines.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/help.h"
#include "pinring/rdma_queue.h"

ABSL_FLAG(std::string, address, "", "IPv4 address (or name) of ringd's RDMA interface");
ABSL_FLAG(std::uint16_t, port, 18515, "ringd's --rdma_port");
ABSL_FLAG(std::uint64_t, size, 1 << 20, "bytes per data region");
ABSL_FLAG(std::string, fork_mode, "kernel",
          "fork-safety mode of the rings and regions: kernel, dontfork, readonly, write-for-read, "
          "shared (readonly regions are only read by ringd: COPY/FILL targets use kernel)");
ABSL_FLAG(std::string, wait, "spin", "how to wait for completions: spin or sleep");
ABSL_FLAG(int, rounds, 4, "COPY+CHECKSUM+FILL rounds");

namespace {

using namespace pinring;

Descriptor Op(Opcode op, std::uint64_t ud) {
  Descriptor d{};
  d.opcode = static_cast<std::uint8_t>(op);
  d.user_data = ud;
  return d;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "rdma_client: FAILED: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  static const char kUsage[] =
      "pinring rdma transport example: connect to ringd's rdma listener, submit, verify.\n"
      "Usage: pinring-rdma-client --address=IP [--port=N] [--size=BYTES] [--rounds=N] "
      "[--wait=spin|sleep] [--fork_mode=MODE]";
  if (pinring_examples::HandleHelp(argc, argv, kUsage)) return 0;
  absl::SetProgramUsageMessage(kUsage);
  absl::ParseCommandLine(argc, argv);
  RdmaQueueOptions o;
  o.address = absl::GetFlag(FLAGS_address);
  if (o.address.empty()) return Fail("--address is required (ringd's RDMA interface IPv4 address)");
  o.port = absl::GetFlag(FLAGS_port);
  auto mode = ParseForkMode(absl::GetFlag(FLAGS_fork_mode));
  if (!mode) return Fail("unknown --fork_mode");
  o.fork_mode = *mode;
  o.completion_wait = absl::GetFlag(FLAGS_wait) == "sleep" ? wire::CompletionWait::kBlock
                                                          : wire::CompletionWait::kSpin;
  const std::uint64_t size = absl::GetFlag(FLAGS_size);

  auto q = RdmaQueue::Connect(o);  // resolve -> open device -> pin rings -> RC connect
  if (!q.ok()) return Fail(q.status().ToString());
  std::printf("connected to ringd %s:%u over %s (connection %u), rings under fork mode %s\n",
              o.address.c_str(), o.port, (*q)->device_name().c_str(), (*q)->connection_id(),
              std::string(ForkModeName(o.fork_mode)).c_str());
  // The source may be read-only for the device; the destination must be device-writable.
  const ForkMode dst_mode = ForkModeIsDeviceReadOnly(*mode) ? ForkMode::kKernel : *mode;
  auto src = (*q)->CreateRegion(size, *mode);
  auto dst = (*q)->CreateRegion(size, dst_mode);
  if (!src.ok()) return Fail(src.status().ToString());
  if (!dst.ok()) return Fail(dst.status().ToString());

  std::mt19937_64 rng(42);
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    for (std::byte& b : (*src)->bytes()) b = static_cast<std::byte>(rng());
    // COPY src -> dst, CHECKSUM dst, FILL the first half of dst: one batch, one doorbell.
    Descriptor batch[3] = {Op(Opcode::kCopy, 1), Op(Opcode::kChecksum, 2), Op(Opcode::kFill, 3)};
    batch[0].src_region = (*src)->handle();
    batch[0].dst_region = (*dst)->handle();
    batch[0].length = size;
    batch[1].src_region = (*dst)->handle();
    batch[1].length = size;
    batch[2].dst_region = (*dst)->handle();
    batch[2].length = size / 2;
    batch[2].value = 0x5a;
    if (auto s = (*q)->Submit(batch); !s.ok()) return Fail(s.ToString());
    Completion c[3];
    std::size_t got = 0;
    while (got < 3) {
      auto n = (*q)->Reap(absl::MakeSpan(c + got, 3 - got), absl::Seconds(60));
      if (!n.ok()) return Fail(n.status().ToString());
      if (*n == 0) return Fail("no completion within 60 s");
      got += *n;
    }
    for (const Completion& x : c) {
      if (x.status != 0) {
        return Fail(std::string("descriptor ") + std::to_string(x.user_data) + ": " +
                    CompletionStatusName(static_cast<CompletionStatus>(x.status)));
      }
    }
    if (c[1].result != Fnv1a64((*src)->bytes())) return Fail("CHECKSUM of the copy differs");
    for (std::uint64_t i = 0; i < size; ++i) {
      const std::byte want = i < size / 2 ? std::byte{0x5a} : (*src)->data()[i];
      if ((*dst)->data()[i] != want) return Fail("byte " + std::to_string(i) + " differs");
    }
    std::printf("round %d: copied, checksummed and filled %llu bytes: verified\n", round,
                static_cast<unsigned long long>(size));
  }
  std::printf("OK\n");
  return 0;
}
