/* pinring-c-hello: the C API end to end. Connects to ringd, creates a region and a queue,
 * submits NOP, FILL and CHECKSUM in one batch, waits, reaps, and verifies FILL's bytes and the
 * checksum against pinring_fnv1a64 computed locally. Exits 0 only if everything checks out.
 *
 * Usage: pinring-c-hello [--socket PATH | --socket=PATH] [--help]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pinring/pinring.h"

#define REGION_SIZE 8192u

static int fail(const char* what, int rc) {
  fprintf(stderr, "pinring-c-hello: %s failed (%d): %s\n", what, rc, pinring_last_error());
  return 1;
}

static void usage(FILE* out) {
  fprintf(out,
          "pinring-c-hello: the pinring C API end to end (NOP, FILL, CHECKSUM, verified).\n"
          "Usage: pinring-c-hello [--socket PATH | --socket=PATH] [--help]\n"
          "  --socket PATH  ringd's socket (default: $PINRING_SOCKET, else the built-in path)\n");
}

int main(int argc, char** argv) {
  const char* socket_path = NULL;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
      socket_path = argv[++i];
    } else if (strncmp(argv[i], "--socket=", 9) == 0) {
      socket_path = argv[i] + 9;
    } else {
      fprintf(stderr, "pinring-c-hello: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }

  pinring_client* client = NULL;
  pinring_region* region = NULL;
  pinring_queue* queue = NULL;
  int rc;
  int exit_code = 1;

  if ((rc = pinring_connect(socket_path, &client)) != 0) return fail("pinring_connect", rc);
  printf("connected (backend %s)\n", pinring_client_backend(client));

  if ((rc = pinring_region_create(client, REGION_SIZE, 0, PINRING_FORK_DONTFORK, &region)) != 0) {
    fail("pinring_region_create", rc);
    goto out;
  }
  pinring_queue_options opts;
  pinring_queue_options_init(&opts);
  opts.sq_entries = 16;
  if ((rc = pinring_queue_create(client, &opts, &queue)) != 0) {
    fail("pinring_queue_create", rc);
    goto out;
  }

  /* Half the region is written by us, half is FILLed by the device; then CHECKSUM all of it. */
  unsigned char* bytes = (unsigned char*)pinring_region_data(region);
  for (unsigned i = 0; i < REGION_SIZE / 2; ++i) bytes[i] = (unsigned char)(i * 7u);
  const uint32_t h = pinring_region_handle(region);
  pinring_descriptor batch[3];
  batch[0] = pinring_make_nop(1);
  batch[1] = pinring_make_fill(h, REGION_SIZE / 2, REGION_SIZE / 2, 0xc3, 2);
  batch[2] = pinring_make_checksum(h, 0, REGION_SIZE, 3);
  batch[2].flags = PINRING_DESC_FENCE; /* checksum only after the FILL has landed */
  if ((rc = pinring_submit(queue, batch, 3)) != 3) {
    fail("pinring_submit", rc);
    goto out;
  }
  if ((rc = pinring_wait(queue, 3, 10000)) < 3) {
    fail("pinring_wait", rc);
    goto out;
  }
  pinring_completion done[3];
  if ((rc = pinring_reap(queue, done, 3)) != 3) {
    fail("pinring_reap", rc);
    goto out;
  }
  static const char* const kNames[] = {"NOP", "FILL", "CHECKSUM"};
  for (int i = 0; i < 3; ++i) {
    printf("  %-9s user_data=%llu status=%s result=0x%llx\n", kNames[i],
           (unsigned long long)done[i].user_data, pinring_completion_status_name(done[i].status),
           (unsigned long long)done[i].result);
    if (done[i].status != PINRING_CS_OK || done[i].user_data != (uint64_t)(i + 1)) {
      fprintf(stderr, "pinring-c-hello: completion %d is not ok\n", i);
      goto out;
    }
  }
  for (unsigned i = REGION_SIZE / 2; i < REGION_SIZE; ++i) {
    if (bytes[i] != 0xc3) {
      fprintf(stderr, "pinring-c-hello: FILL did not land at byte %u\n", i);
      goto out;
    }
  }
  const uint64_t expected = pinring_fnv1a64(bytes, REGION_SIZE);
  if (done[2].result != expected) {
    fprintf(stderr, "pinring-c-hello: checksum 0x%llx != local 0x%llx\n",
            (unsigned long long)done[2].result, (unsigned long long)expected);
    goto out;
  }
  printf("pinring-c-hello: NOP, FILL and CHECKSUM verified (checksum 0x%llx)\n",
         (unsigned long long)expected);
  exit_code = 0;

out:
  pinring_queue_close(queue);
  pinring_region_close(region);
  pinring_client_close(client);
  return exit_code;
}
