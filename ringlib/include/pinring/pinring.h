/* pinring C API: a thin, C-callable layer over the C++ ringlib (pinring/client.h).
 *
 * Conventions:
 *  - Handles are opaque pointers. Each *_create / pinring_connect that returns 0 hands the caller
 *    one handle, which the caller releases with the matching *_close (NULL is accepted there).
 *    Queues and regions may be closed before or after their client, in any order.
 *  - Functions returning int return 0 (or a non-negative count) on success and a negative
 *    PINRING_ERR_* code on failure; then pinring_last_error() describes the failure, including
 *    how to fix it (e.g. "ringd is not running at PATH: start it with ...").
 *  - PINRING_ERR_UNAVAILABLE: ringd stopped; close everything and pinring_connect again.
 *    PINRING_ERR_FAILED_PRECONDITION from a handle in a forked child: connect anew in the child.
 *  - A queue handle is used by one thread at a time. Nothing here throws or aborts.
 */
#ifndef PINRING_PINRING_H_
#define PINRING_PINRING_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pinring/export.h"

/* The version of these headers (the project's version; CMake checks they agree). A program can
 * test it at compile time, e.g. #if PINRING_VERSION_NUMBER >= 100 for 0.1.0 and later. */
#define PINRING_VERSION_MAJOR 0
#define PINRING_VERSION_MINOR 1
#define PINRING_VERSION_PATCH 0
#define PINRING_VERSION_STRING "0.1.0"
#define PINRING_VERSION_NUMBER \
  (PINRING_VERSION_MAJOR * 10000 + PINRING_VERSION_MINOR * 100 + PINRING_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pinring_client pinring_client;
typedef struct pinring_region pinring_region;
typedef struct pinring_queue pinring_queue;

/* Error codes: the negated absl::StatusCode of the underlying failure. */
enum {
  PINRING_OK = 0,
  PINRING_ERR_CANCELLED = -1,
  PINRING_ERR_UNKNOWN = -2,
  PINRING_ERR_INVALID_ARGUMENT = -3,
  PINRING_ERR_DEADLINE_EXCEEDED = -4,
  PINRING_ERR_NOT_FOUND = -5,
  PINRING_ERR_ALREADY_EXISTS = -6,
  PINRING_ERR_PERMISSION_DENIED = -7,
  PINRING_ERR_RESOURCE_EXHAUSTED = -8,
  PINRING_ERR_FAILED_PRECONDITION = -9,
  PINRING_ERR_ABORTED = -10,
  PINRING_ERR_OUT_OF_RANGE = -11,
  PINRING_ERR_UNIMPLEMENTED = -12,
  PINRING_ERR_INTERNAL = -13,
  PINRING_ERR_UNAVAILABLE = -14,
  PINRING_ERR_DATA_LOSS = -15,
  PINRING_ERR_UNAUTHENTICATED = -16
};

/* Opcodes, completion statuses, fork modes, doorbell modes: same values as the C++ enums. */
enum { PINRING_OP_NOP = 0, PINRING_OP_COPY = 1, PINRING_OP_CHECKSUM = 2, PINRING_OP_FILL = 3 };
enum { PINRING_DESC_FILL_PATTERN64 = 1, PINRING_DESC_FENCE = 2 };
enum {
  PINRING_CS_OK = 0,
  PINRING_CS_BAD_OPCODE = 1,
  PINRING_CS_UNKNOWN_REGION = 2,
  PINRING_CS_OUT_OF_BOUNDS = 3,
  PINRING_CS_BAD_FLAGS = 4,
  PINRING_CS_MISALIGNED = 5,
  PINRING_CS_BAD_RESERVED = 6,
  PINRING_CS_READ_ONLY_REGION = 7,
  PINRING_CS_OVERLAP = 8,
  PINRING_CS_DEVICE_ERROR = 9,
  PINRING_CS_SHUTTING_DOWN = 10,
  PINRING_CS_REGION_FAULT = 11
};
enum {
  PINRING_FORK_KERNEL = 0,
  PINRING_FORK_DONTFORK = 1,
  PINRING_FORK_READONLY = 2,
  PINRING_FORK_WRITE_FOR_READ = 3,
  PINRING_FORK_SHARED = 4,
  PINRING_FORK_ODP = 5 /* on-demand paging: nothing pinned; needs a device with ODP for RC */
};
enum { PINRING_DOORBELL_BUSY_POLL = 0, PINRING_DOORBELL_EVENTFD = 1, PINRING_DOORBELL_ADAPTIVE = 2 };
enum { PINRING_WAIT_SPIN = 0, PINRING_WAIT_BLOCK = 1 };

/* The 64-byte descriptor; layout identical to pinring::Descriptor (checked in c_api.cc). */
typedef struct pinring_descriptor {
  uint64_t user_data;
  uint8_t opcode;
  uint8_t flags;
  uint16_t reserved0; /* must be 0 */
  uint32_t src_region;
  uint32_t dst_region;
  uint32_t reserved1; /* must be 0 */
  uint64_t src_offset;
  uint64_t dst_offset;
  uint64_t length;
  uint64_t value;
  uint64_t reserved2; /* must be 0 */
} pinring_descriptor;

/* The 32-byte completion; layout identical to pinring::Completion. */
typedef struct pinring_completion {
  uint64_t user_data;
  uint64_t result; /* CHECKSUM: the checksum; COPY/FILL: bytes written; NOP: 0 */
  int32_t status;  /* PINRING_CS_* */
  uint32_t reserved0;
  uint64_t reserved1;
} pinring_completion;

typedef struct pinring_queue_options {
  uint32_t sq_entries;       /* power of two; default 256 */
  uint32_t cq_entries;       /* power of two, 0 = sq_entries */
  int doorbell_mode;         /* PINRING_DOORBELL_*; default EVENTFD */
  int completion_wait;       /* PINRING_WAIT_*; default BLOCK */
  uint32_t adaptive_poll_us; /* ADAPTIVE only; 0 = ringd's default */
} pinring_queue_options;

/* Description of the last failure on the calling thread ("" if none). Valid until the next
 * pinring_* call on this thread. */
PINRING_EXPORT const char* pinring_last_error(void);

/* Name of a completion status ("ok", "out-of-bounds", ...). */
PINRING_EXPORT const char* pinring_completion_status_name(int32_t status);

/* FNV-1a 64, the checksum CHECKSUM computes. */
PINRING_EXPORT uint64_t pinring_fnv1a64(const void* data, size_t len);

/* Connects to ringd at `socket_path` (NULL or "": $PINRING_SOCKET, else the default path) and
 * performs the handshake. On success stores a new handle in *out. */
PINRING_EXPORT int pinring_connect(const char* socket_path, pinring_client** out);
/* "cpu" or "verbs". Owned by the client handle. */
PINRING_EXPORT const char* pinring_client_backend(const pinring_client* client);
/* Releases the handle; ringd forgets the client once its queues and regions are closed too. */
PINRING_EXPORT void pinring_client_close(pinring_client* client);

/* Creates and registers a data region of `size` bytes (huge_pages: 0/1; fork_mode:
 * PINRING_FORK_*). On success stores a new handle in *out. */
PINRING_EXPORT int pinring_region_create(pinring_client* client, uint64_t size, int huge_pages,
                                         int fork_mode, pinring_region** out);
/* The mapped bytes (size bytes), owned by the region handle. */
PINRING_EXPORT void* pinring_region_data(const pinring_region* region);
PINRING_EXPORT uint64_t pinring_region_size(const pinring_region* region);
/* The handle to put in pinring_descriptor.src_region / dst_region. */
PINRING_EXPORT uint32_t pinring_region_handle(const pinring_region* region);
/* Deregisters and unmaps. */
PINRING_EXPORT void pinring_region_close(pinring_region* region);

/* Fills *opts with the defaults. */
PINRING_EXPORT void pinring_queue_options_init(pinring_queue_options* opts);
/* Creates a queue (opts NULL: defaults). On success stores a new handle in *out. */
PINRING_EXPORT int pinring_queue_create(pinring_client* client, const pinring_queue_options* opts,
                                        pinring_queue** out);
/* Copies up to n descriptors into the submission ring and commits them (ringing the doorbell
 * only if ringd sleeps). Returns how many were submitted (0 when the ring is full). */
PINRING_EXPORT int pinring_submit(pinring_queue* queue, const pinring_descriptor* descs, uint32_t n);
/* Waits until at least `min` completions are ready or timeout_ms passes (-1: 60 s). Returns the
 * number ready, PINRING_ERR_DEADLINE_EXCEEDED on timeout, PINRING_ERR_UNAVAILABLE if ringd
 * stopped. */
PINRING_EXPORT int pinring_wait(pinring_queue* queue, uint32_t min, int timeout_ms);
/* Copies up to max ready completions into out and releases them. Returns how many. */
PINRING_EXPORT int pinring_reap(pinring_queue* queue, pinring_completion* out, uint32_t max);
/* Destroys the queue in ringd, unmaps it, closes its eventfds. */
PINRING_EXPORT void pinring_queue_close(pinring_queue* queue);

/* Descriptor builders. pinring_make_descriptor is the one that fills a descriptor: every field
 * it is given, every reserved field (and padding) zero, which ringd requires. */
static inline pinring_descriptor pinring_make_descriptor(uint8_t opcode, uint8_t flags,
                                                         uint32_t src_region, uint64_t src_offset,
                                                         uint32_t dst_region, uint64_t dst_offset,
                                                         uint64_t length, uint64_t value,
                                                         uint64_t user_data) {
  pinring_descriptor d;
  memset(&d, 0, sizeof d);
  d.user_data = user_data;
  d.opcode = opcode;
  d.flags = flags;
  d.src_region = src_region;
  d.src_offset = src_offset;
  d.dst_region = dst_region;
  d.dst_offset = dst_offset;
  d.length = length;
  d.value = value;
  return d;
}
static inline pinring_descriptor pinring_make_nop(uint64_t user_data) {
  return pinring_make_descriptor(PINRING_OP_NOP, 0, 0, 0, 0, 0, 0, 0, user_data);
}
static inline pinring_descriptor pinring_make_fill(uint32_t dst_region, uint64_t dst_offset,
                                                   uint64_t length, uint8_t byte,
                                                   uint64_t user_data) {
  return pinring_make_descriptor(PINRING_OP_FILL, 0, 0, 0, dst_region, dst_offset, length, byte,
                                 user_data);
}
static inline pinring_descriptor pinring_make_copy(uint32_t src_region, uint64_t src_offset,
                                                   uint32_t dst_region, uint64_t dst_offset,
                                                   uint64_t length, uint64_t user_data) {
  return pinring_make_descriptor(PINRING_OP_COPY, 0, src_region, src_offset, dst_region,
                                 dst_offset, length, 0, user_data);
}
static inline pinring_descriptor pinring_make_checksum(uint32_t src_region, uint64_t src_offset,
                                                       uint64_t length, uint64_t user_data) {
  return pinring_make_descriptor(PINRING_OP_CHECKSUM, 0, src_region, src_offset, 0, 0, length, 0,
                                 user_data);
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PINRING_PINRING_H_ */
