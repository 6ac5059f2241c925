// Shared helpers for the ringlib integration tests: a real ringd per test, and small builders.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/ringd_process.h"
#include "pinring/client.h"

namespace pinring::testing {

// Starts `ringd --backend=<backend>` (plus `extra` args) on a private socket, or fails the test.
inline std::unique_ptr<RingdProcess> StartRingdOrDie(const std::string& backend,
                                                     std::vector<std::string> extra = {}) {
  extra.insert(extra.begin(), "--backend=" + backend);
  auto p = RingdProcess::Start(extra);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

inline ClientOptions OptionsFor(const RingdProcess& ringd) {
  ClientOptions o;
  o.socket_path = ringd.socket_path();
  o.name = "ringlib-test";
  return o;
}

inline std::int32_t Ok() { return static_cast<std::int32_t>(CompletionStatus::kOk); }

// The end-to-end data check every backend must pass: FILL, COPY (of bytes we wrote), CHECKSUM
// against the local Fnv1a64, all verified against the shared pages. Returns "" or what failed.
inline std::string EndToEndDataCheck(Client& client, std::uint64_t size, std::uint8_t seed) {
  RegionOptions ro;
  ro.size = size;
  auto src = client.CreateRegion(ro);
  if (!src.ok()) return "CreateRegion(src): " + src.status().ToString();
  auto dst = client.CreateRegion(ro);
  if (!dst.ok()) return "CreateRegion(dst): " + dst.status().ToString();
  auto q = client.CreateQueue({});
  if (!q.ok()) return "CreateQueue: " + q.status().ToString();
  auto nop = q->SubmitAndWait(MakeNop(1), absl::Seconds(10));
  if (!nop.ok() || nop->status != Ok() || nop->user_data != 1) return "NOP failed";
  auto fill = q->SubmitAndWait(MakeFill(dst->handle(), 0, size, seed, 2), absl::Seconds(10));
  if (!fill.ok()) return "FILL: " + fill.status().ToString();
  if (fill->status != Ok() || fill->result != size) return "FILL completion not ok";
  for (std::uint64_t i = 0; i < size; ++i) {
    if (dst->data()[i] != std::byte{seed}) return "FILL bytes wrong at " + std::to_string(i);
  }
  for (std::uint64_t i = 0; i < size; ++i) {
    src->data()[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  }
  const std::uint64_t half = size / 2;
  auto copy = q->SubmitAndWait(MakeCopy(src->handle(), 0, dst->handle(), half, half, 3),
                               absl::Seconds(10));
  if (!copy.ok()) return "COPY: " + copy.status().ToString();
  if (copy->status != Ok() || copy->result != half) return "COPY completion not ok";
  if (std::memcmp(src->data(), dst->data() + half, half) != 0) return "COPY bytes wrong";
  auto sum = q->SubmitAndWait(MakeChecksum(dst->handle(), 0, size, 4), absl::Seconds(10));
  if (!sum.ok()) return "CHECKSUM: " + sum.status().ToString();
  if (sum->status != Ok()) return "CHECKSUM completion not ok";
  if (sum->result != Fnv1a64(dst->bytes())) return "CHECKSUM differs from local Fnv1a64";
  return "";
}

}  // namespace pinring::testing
