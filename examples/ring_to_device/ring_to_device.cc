// pinring-ring-to-device: the ring-to-device scheme from the 2020 LKML discussion on pinned pages
// (Jason Gunthorpe, "Re: [PATCH 1/5] mm: Introduce mm_struct.has_pinned", 2020-09-28):
//
//     ring = mmap()
//     pin_user_pages(FOLL_LONGTERM)
//     ring[0] = [..]
//     trigger_kernel()
//
// Here ringd plays the device. Step by step:
//   1. map a ring and register it: Client::CreateQueue mmaps a sealed memfd and passes it to
//      ringd, which maps it too and (verbs backend) registers it with ibv_reg_mr, i.e. pins it
//      with pin_user_pages(FOLL_LONGTERM). The ring is registered BEFORE anything is written to
//      slot 0, exactly as in the scheme.
//   2. write a descriptor into slot 0 (Queue::Reserve / Slot) — a plain store into the mapping;
//   3. trigger: Queue::Commit publishes the tail and writes the doorbell eventfd if ringd sleeps;
//   4. the device (ringd) reads the descriptor from the pinned pages, executes it, and writes a
//      completion, which we read back from the same kind of pinned ring.
//
// Why the pin must follow the process's later writes. The pages were pinned at step 1 while they
// were still untouched. Had the ring been private anonymous memory, an untouched page is mapped
// to the shared zero page, and pinning it for *read* would pin the zero page itself: the store at
// step 2 then COW-faults a fresh page into the process, and the device keeps reading zeros
// forever — "the kernel will pin the zero page and will never see any user modifications to the
// buffer". A ring only works if the pin is exclusive and follows the source VM's later changes
// (Linus's option #2). pinring gets that by construction: rings and regions are MAP_SHARED memfd
// pages that live in the page cache, so the process and ringd (and the device) address the very
// same pages; there is no zero page and no copy-on-write to break the wrong way, and MADV_DONTFORK
// keeps a later fork() from ever COW-splitting the ring.
//
// The example verifies exactly that: the descriptor written after registration is executed
// (ringd saw the write), and a CHECKSUM over region bytes written after registration equals the
// checksum computed locally — twice, with different contents, so a stale snapshot cannot pass.
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

namespace {

int Fail(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "pinring-ring-to-device: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

void ShowIndices(const char* when, const pinring::Queue& q) {
  const pinring::QueueHeader* h = q.header();
  // Relaxed loads: diagnostics only, nothing is read through these values.
  std::printf("  [%s] sq_tail=%u sq_head=%u cq_tail=%u cq_head=%u sq_flags=%s\n", when,
              h->sq_tail.value.load(std::memory_order_relaxed),
              h->sq_head.value.load(std::memory_order_relaxed),
              h->cq_tail.value.load(std::memory_order_relaxed),
              h->cq_head.value.load(std::memory_order_relaxed),
              (h->sq_flags.value.load(std::memory_order_relaxed) & pinring::kSqNeedWakeup)
                  ? "need-wakeup"
                  : "0");
}

// Steps 2-4 for one descriptor, with the ring's state printed around each step.
absl::StatusOr<pinring::Completion> WriteSlotAndTrigger(pinring::Queue& q,
                                                        const pinring::Descriptor& d) {
  // Step 2: write the descriptor into the slot, a plain store into the registered ring.
  if (q.Reserve(1) != 1) {
    if (auto s = q.Health(); !s.ok()) return s;
    return absl::ResourceExhaustedError("submission ring unexpectedly full");
  }
  q.Slot(0) = d;
  std::printf("  wrote descriptor (opcode %u, user_data %llu) into the slot at sq_tail\n",
              d.opcode, static_cast<unsigned long long>(d.user_data));
  // Step 3: trigger. Commit's release store publishes the slot before the tail; the doorbell
  // eventfd is written only if ringd announced it sleeps (kSqNeedWakeup).
  const std::uint64_t rung_before = q.doorbells_rung();
  q.Commit(1);
  std::printf("  committed; doorbell %s\n",
              q.doorbells_rung() > rung_before ? "rung (ringd was asleep)"
                                               : "not needed (ringd was polling)");
  // Step 4: ringd read the descriptor from the pinned pages and completes it.
  auto ready = q.WaitCompletions(1, absl::Seconds(10));
  if (!ready.ok()) return ready.status();
  const pinring::Completion c = q.CompletionAt(0);
  q.ReleaseCompletions(1);
  ShowIndices("after completion", q);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  static constexpr char kUsage[] =
      "The 2020 ring-to-device scheme: map and register a ring, write slot 0, trigger, and let\n"
      "ringd (the device) read it from the pinned pages.\n"
      "Usage: pinring-ring-to-device [--socket=PATH]";
  if (pinring_examples::HandleHelp(argc, argv, kUsage)) return 0;
  absl::SetProgramUsageMessage(kUsage);
  absl::ParseCommandLine(argc, argv);

  pinring::ClientOptions copts;
  copts.socket_path = absl::GetFlag(FLAGS_socket);
  copts.name = "pinring-ring-to-device";
  auto client = pinring::Client::Connect(copts);
  if (!client.ok()) return Fail("connect", client.status());
  std::printf("ringd backend: %s%s%s\n", client->info().backend.c_str(),
              client->info().device.empty() ? "" : " on ",
              client->info().device.c_str());

  // Step 1: ring = mmap(); register (pin). CreateQueue returns only after ringd mapped the ring
  // and, with the verbs backend, registered it. Nothing has been written to any slot yet.
  pinring::QueueOptions qopts;
  qopts.sq_entries = 8;
  qopts.doorbell = pinring::wire::DoorbellMode::kEventfd;
  qopts.completion_wait = pinring::wire::CompletionWait::kBlock;
  auto queue = client->CreateQueue(qopts);
  if (!queue.ok()) return Fail("map and register the ring", queue.status());
  std::printf("step 1: ring mapped at %p (%zu bytes) and registered by ringd as queue %u\n",
              queue->ring_address(), queue->ring_bytes(), queue->id());
  ShowIndices("registered, untouched", *queue);

  // A data region, also registered before the process writes a byte of it.
  pinring::RegionOptions ropts;
  ropts.size = 4096;
  auto region = client->CreateRegion(ropts);
  if (!region.ok()) return Fail("register a data region", region.status());

  for (int round = 1; round <= 2; ++round) {
    // The process writes the data after the registration; the device must see these writes.
    const std::string text = absl::StrCat("round ", round, ": written by pid-local code after ",
                                          "the pages were pinned");
    std::memset(region->data(), 0, region->size());
    std::memcpy(region->data(), text.data(), text.size());
    const std::uint64_t expected = pinring::Fnv1a64(region->bytes());
    std::printf("step 2-4, round %d: CHECKSUM of a region holding \"%s\"\n", round, text.c_str());
    auto c = WriteSlotAndTrigger(
        *queue, pinring::MakeChecksum(region->handle(), 0, region->size(), 100 + round));
    if (!c.ok()) return Fail("write slot and trigger", c.status());
    std::printf("  completion: user_data=%llu status=%s checksum=0x%llx, local=0x%llx\n",
                static_cast<unsigned long long>(c->user_data),
                pinring::CompletionStatusName(static_cast<pinring::CompletionStatus>(c->status)),
                static_cast<unsigned long long>(c->result),
                static_cast<unsigned long long>(expected));
    if (c->status != 0 || c->user_data != static_cast<std::uint64_t>(100 + round) ||
        c->result != expected) {
      return Fail("verify", absl::DataLossError("the device did not see the process's writes"));
    }
  }
  std::printf("verified: the device read descriptors and data written after registration\n");
  return 0;
}
