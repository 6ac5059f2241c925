// Shared helpers of the rdma transport tests: the address ringd listens on, an in-process
// listener, descriptor builders and a client that checks its own data end to end.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/require_device.h"
#include "common/self_rdma_address.h"
#include "pinring/descriptors.h"
#include "pinring/rdma_queue.h"
#include "verbs/verbs_device.h"
#include "service/rdma/rdma_listener.h"

namespace pinring::testing {

inline std::unique_ptr<ringd::RdmaListener> StartListener(ringd::RdmaListenerOptions o = {}) {
  o.port = 0;  // ephemeral: tests run in parallel with a real ringd
  if (!o.log) o.log = [](const std::string& s) { std::fprintf(stderr, "[listener] %s\n", s.c_str()); };
  auto l = ringd::RdmaListener::Start(o);
  EXPECT_TRUE(l.ok()) << l.status();
  return l.ok() ? std::move(*l) : nullptr;
}

inline RdmaQueueOptions QueueOptionsFor(const ringd::RdmaListener& l, std::uint32_t sq = 16) {
  RdmaQueueOptions o;
  o.address = SelfRdmaAddress();
  o.port = l.port();
  o.sq_entries = sq;
  o.timeout = absl::Seconds(20);
  return o;
}

// Short names for ringlib's public builders (pinring/descriptors.h), same argument order.
inline Descriptor Nop(std::uint64_t ud) { return MakeNop(ud); }
inline Descriptor Fill(std::uint32_t dst, std::uint64_t off, std::uint64_t len, std::uint8_t b,
                       std::uint64_t ud = 0) {
  return MakeFill(dst, off, len, b, ud);
}
inline Descriptor Copy(std::uint32_t src, std::uint64_t soff, std::uint32_t dst, std::uint64_t doff,
                       std::uint64_t len, std::uint64_t ud = 0) {
  return MakeCopy(src, soff, dst, doff, len, ud);
}
inline Descriptor Checksum(std::uint32_t src, std::uint64_t off, std::uint64_t len,
                           std::uint64_t ud = 0) {
  return MakeChecksum(src, off, len, ud);
}

// A client's own end-to-end check: random bytes in region a, COPY a -> b by the device, CHECKSUM
// of b by the device, FILL of a; verified against the client's view. "" = all good.
inline std::string DataCheck(RdmaQueue& q, std::size_t size, std::uint32_t seed) {
  auto a = q.CreateRegion(size);
  if (!a.ok()) return a.status().ToString();
  auto b = q.CreateRegion(size);
  if (!b.ok()) return b.status().ToString();
  std::uint32_t x = seed | 1;
  for (std::byte& v : (*a)->bytes()) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v = static_cast<std::byte>(x);
  }
  auto c = q.SubmitAndWait(Copy((*a)->handle(), 0, (*b)->handle(), 0, size, 1), absl::Seconds(30));
  if (!c.ok()) return c.status().ToString();
  if (c->status != 0 || c->user_data != 1 || c->result != size) {
    return absl::StrCat("copy completion status ", c->status, " result ", c->result);
  }
  if (std::memcmp((*a)->data(), (*b)->data(), size) != 0) return "copy: bytes differ";
  auto s = q.SubmitAndWait(Checksum((*b)->handle(), 0, size, 2), absl::Seconds(30));
  if (!s.ok()) return s.status().ToString();
  if (s->status != 0 || s->result != Fnv1a64((*a)->bytes())) return "checksum mismatch";
  auto f = q.SubmitAndWait(Fill((*a)->handle(), 8, size - 8, 0xa5, 3), absl::Seconds(30));
  if (!f.ok()) return f.status().ToString();
  if (f->status != 0) return absl::StrCat("fill status ", f->status);
  for (std::size_t i = 8; i < size; ++i) {
    if ((*a)->data()[i] != std::byte{0xa5}) return absl::StrCat("fill: byte ", i, " wrong");
  }
  if (!q.DestroyRegion(*a).ok() || !q.DestroyRegion(*b).ok()) return "DestroyRegion failed";
  return "";
}

}  // namespace pinring::testing
