// The C API (pinring/pinring.h) over the C++ classes. No exception or abort crosses this
// boundary: every failure becomes a negative code plus a thread-local message.
#include "pinring/pinring.h"

#include <cstddef>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "pinring/client.h"

struct pinring_client {
  pinring::Client client;
};
struct pinring_region {
  pinring::Region region;
};
struct pinring_queue {
  pinring::Queue queue;
};

namespace {

// The two descriptor/completion definitions must agree byte for byte.
static_assert(sizeof(pinring_descriptor) == sizeof(pinring::Descriptor));
static_assert(offsetof(pinring_descriptor, opcode) == offsetof(pinring::Descriptor, opcode));
static_assert(offsetof(pinring_descriptor, src_region) ==
              offsetof(pinring::Descriptor, src_region));
static_assert(offsetof(pinring_descriptor, dst_region) ==
              offsetof(pinring::Descriptor, dst_region));
static_assert(offsetof(pinring_descriptor, src_offset) ==
              offsetof(pinring::Descriptor, src_offset));
static_assert(offsetof(pinring_descriptor, dst_offset) ==
              offsetof(pinring::Descriptor, dst_offset));
static_assert(offsetof(pinring_descriptor, length) == offsetof(pinring::Descriptor, length));
static_assert(offsetof(pinring_descriptor, value) == offsetof(pinring::Descriptor, value));
static_assert(offsetof(pinring_descriptor, reserved2) == offsetof(pinring::Descriptor, reserved2));
static_assert(sizeof(pinring_completion) == sizeof(pinring::Completion));
static_assert(offsetof(pinring_completion, result) == offsetof(pinring::Completion, result));
static_assert(offsetof(pinring_completion, status) == offsetof(pinring::Completion, status));
static_assert(PINRING_CS_SHUTTING_DOWN ==
              static_cast<int>(pinring::CompletionStatus::kShuttingDown));
static_assert(PINRING_CS_REGION_FAULT ==
              static_cast<int>(pinring::CompletionStatus::kRegionFault));
static_assert(PINRING_FORK_SHARED == static_cast<int>(pinring::ForkMode::kShared));
static_assert(PINRING_FORK_ODP == static_cast<int>(pinring::ForkMode::kOdp));
static_assert(PINRING_DOORBELL_ADAPTIVE == static_cast<int>(pinring::wire::DoorbellMode::kAdaptive));
static_assert(PINRING_WAIT_BLOCK == static_cast<int>(pinring::wire::CompletionWait::kBlock));

thread_local std::string t_last_error;

int Ok() {
  t_last_error.clear();
  return PINRING_OK;
}

int Error(const absl::Status& s) {
  t_last_error = std::string(s.message());
  if (t_last_error.empty()) t_last_error = s.ToString();
  const int code = static_cast<int>(s.code());
  return code == 0 ? PINRING_ERR_UNKNOWN : -code;
}

int Error(int code, const char* message) {
  t_last_error = message;
  return code;
}

}  // namespace

extern "C" {

const char* pinring_last_error(void) { return t_last_error.c_str(); }

const char* pinring_completion_status_name(int32_t status) {
  if (status < 0 || status >= pinring::kCompletionStatusCount) return "unknown-status";
  return pinring::CompletionStatusName(static_cast<pinring::CompletionStatus>(status));
}

uint64_t pinring_fnv1a64(const void* data, size_t len) {
  return pinring::Fnv1a64({static_cast<const std::byte*>(data), len});
}

int pinring_connect(const char* socket_path, pinring_client** out) {
  if (out == nullptr) return Error(PINRING_ERR_INVALID_ARGUMENT, "pinring_connect: out is NULL");
  *out = nullptr;
  pinring::ClientOptions opts;
  if (socket_path != nullptr) opts.socket_path = socket_path;
  auto c = pinring::Client::Connect(opts);
  if (!c.ok()) return Error(c.status());
  auto* h = new (std::nothrow) pinring_client{*std::move(c)};
  if (h == nullptr) return Error(PINRING_ERR_RESOURCE_EXHAUSTED, "out of memory");
  *out = h;
  return Ok();
}

const char* pinring_client_backend(const pinring_client* client) {
  return client == nullptr ? "" : client->client.info().backend.c_str();
}

void pinring_client_close(pinring_client* client) { delete client; }

int pinring_region_create(pinring_client* client, uint64_t size, int huge_pages, int fork_mode,
                          pinring_region** out) {
  if (client == nullptr || out == nullptr) {
    return Error(PINRING_ERR_INVALID_ARGUMENT, "pinring_region_create: NULL argument");
  }
  *out = nullptr;
  if (fork_mode < 0 || fork_mode >= pinring::kForkModeCount) {
    return Error(PINRING_ERR_INVALID_ARGUMENT,
                 "pinring_region_create: fork_mode is not a PINRING_FORK_* value");
  }
  pinring::RegionOptions opts;
  opts.size = size;
  opts.huge_pages = huge_pages != 0;
  opts.fork_mode = static_cast<pinring::ForkMode>(fork_mode);
  auto r = client->client.CreateRegion(opts);
  if (!r.ok()) return Error(r.status());
  auto* h = new (std::nothrow) pinring_region{*std::move(r)};
  if (h == nullptr) return Error(PINRING_ERR_RESOURCE_EXHAUSTED, "out of memory");
  *out = h;
  return Ok();
}

void* pinring_region_data(const pinring_region* region) {
  return region == nullptr ? nullptr : region->region.data();
}
uint64_t pinring_region_size(const pinring_region* region) {
  return region == nullptr ? 0 : region->region.size();
}
uint32_t pinring_region_handle(const pinring_region* region) {
  return region == nullptr ? 0 : region->region.handle();
}
void pinring_region_close(pinring_region* region) { delete region; }

void pinring_queue_options_init(pinring_queue_options* opts) {
  if (opts == nullptr) return;
  const pinring::QueueOptions d;
  opts->sq_entries = d.sq_entries;
  opts->cq_entries = d.cq_entries;
  opts->doorbell_mode = static_cast<int>(d.doorbell);
  opts->completion_wait = static_cast<int>(d.completion_wait);
  opts->adaptive_poll_us = d.adaptive_poll_us;
}

int pinring_queue_create(pinring_client* client, const pinring_queue_options* opts,
                         pinring_queue** out) {
  if (client == nullptr || out == nullptr) {
    return Error(PINRING_ERR_INVALID_ARGUMENT, "pinring_queue_create: NULL argument");
  }
  *out = nullptr;
  pinring_queue_options o;
  pinring_queue_options_init(&o);
  if (opts != nullptr) o = *opts;
  if (o.doorbell_mode < 0 || o.doorbell_mode >= pinring::wire::kDoorbellModeCount ||
      o.completion_wait < 0 || o.completion_wait >= pinring::wire::kCompletionWaitCount) {
    return Error(PINRING_ERR_INVALID_ARGUMENT,
                 "pinring_queue_create: doorbell_mode or completion_wait out of range");
  }
  pinring::QueueOptions qo;
  qo.sq_entries = o.sq_entries;
  qo.cq_entries = o.cq_entries;
  qo.doorbell = static_cast<pinring::wire::DoorbellMode>(o.doorbell_mode);
  qo.completion_wait = static_cast<pinring::wire::CompletionWait>(o.completion_wait);
  qo.adaptive_poll_us = o.adaptive_poll_us;
  auto q = client->client.CreateQueue(qo);
  if (!q.ok()) return Error(q.status());
  auto* h = new (std::nothrow) pinring_queue{*std::move(q)};
  if (h == nullptr) return Error(PINRING_ERR_RESOURCE_EXHAUSTED, "out of memory");
  *out = h;
  return Ok();
}

int pinring_submit(pinring_queue* queue, const pinring_descriptor* descs, uint32_t n) {
  if (queue == nullptr || (descs == nullptr && n != 0)) {
    return Error(PINRING_ERR_INVALID_ARGUMENT, "pinring_submit: NULL argument");
  }
  // Layout-identical (static_asserts above); the C++ side only copies the bytes.
  const auto* d = reinterpret_cast<const pinring::Descriptor*>(descs);
  auto r = queue->queue.Submit({d, n});
  if (!r.ok()) return Error(r.status());
  Ok();
  return static_cast<int>(*r);
}

int pinring_wait(pinring_queue* queue, uint32_t min, int timeout_ms) {
  if (queue == nullptr) return Error(PINRING_ERR_INVALID_ARGUMENT, "pinring_wait: NULL queue");
  const absl::Duration timeout =
      timeout_ms < 0 ? absl::Seconds(60) : absl::Milliseconds(timeout_ms);
  auto r = queue->queue.WaitCompletions(min, timeout);
  if (!r.ok()) return Error(r.status());
  Ok();
  return static_cast<int>(*r);
}

int pinring_reap(pinring_queue* queue, pinring_completion* out, uint32_t max) {
  if (queue == nullptr || (out == nullptr && max != 0)) {
    return Error(PINRING_ERR_INVALID_ARGUMENT, "pinring_reap: NULL argument");
  }
  auto* c = reinterpret_cast<pinring::Completion*>(out);
  const std::uint32_t n = queue->queue.Reap({c, max});
  // Only an empty reap pays for the health check (a poll(2)), so reaping stays syscall-free.
  if (n == 0 && max != 0) {
    if (absl::Status s = queue->queue.Health(); !s.ok()) return Error(s);
  }
  Ok();
  return static_cast<int>(n);
}

void pinring_queue_close(pinring_queue* queue) { delete queue; }

}  // extern "C"
