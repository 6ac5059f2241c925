// pinring-consumer: the smallest complete pinring client, built out of tree against the installed
// package. Connects to ringd, registers a 64 KiB region, has ringd fill it, and checks the bytes.
//
//   pinring-consumer [--socket=PATH] [--name=NAME] [--hold=SECONDS] [--reconnect]
//
// With --reconnect it also shows what a long-lived client does when ringd restarts: every call
// then fails with Unavailable ("ringd stopped ..."), and the fix is to Connect again.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <unistd.h>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pinring/client.h"
#include "pinring/descriptors.h"

namespace {

constexpr char kUsage[] =
    "usage: pinring-consumer [--socket=PATH] [--name=NAME] [--hold=SECONDS] [--reconnect]\n"
    "\n"
    "Connects to ringd, registers a 64 KiB region (fork mode dontfork), asks ringd to fill it\n"
    "with 0x5a through one queue, and checks every byte. Exit status 0 when the bytes match.\n"
    "\n"
    "  --socket=PATH    ringd's socket (default: $PINRING_SOCKET, else /run/pinring/ringd.sock)\n"
    "  --name=NAME      how this client appears in `ringctl status` (default pinring-consumer)\n"
    "  --hold=SECONDS   stay connected this long after the check (to watch it with ringctl)\n"
    "  --reconnect      after the check, wait (up to --hold seconds, default 120) for ringd to go\n"
    "                   away, print its error, connect again (retrying for 60 s) and repeat the\n"
    "                   check; exit status 0 only if all of that happened\n"
    "  --help           this text\n";

bool Flag(std::string_view arg, std::string_view name, std::string* value) {
  if (arg.substr(0, name.size()) != name || arg.size() <= name.size() ||
      arg[name.size()] != '=') {
    return false;
  }
  *value = std::string(arg.substr(name.size() + 1));
  return true;
}

// One region, one queue, one fill; checks every byte. Prints what went wrong and returns false.
// The region and queue stay registered (and pinned) in *region and *queue.
bool FillAndCheck(pinring::Client& client, pinring::Region* region_out,
                  pinring::Queue* queue_out) {
  std::printf("connected to %s: client %u, backend %s%s%s\n", client.info().socket_path.c_str(),
              client.info().client_id, client.info().backend.c_str(),
              client.info().device.empty() ? "" : ", device ", client.info().device.c_str());
  constexpr std::uint64_t kSize = 64 * 1024;
  absl::StatusOr<pinring::Region> region = client.CreateRegion({.size = kSize});
  if (!region.ok()) {
    std::fprintf(stderr, "pinring-consumer: %s\n", region.status().ToString().c_str());
    return false;
  }
  absl::StatusOr<pinring::Queue> queue = client.CreateQueue({});
  if (!queue.ok()) {
    std::fprintf(stderr, "pinring-consumer: %s\n", queue.status().ToString().c_str());
    return false;
  }
  absl::StatusOr<pinring::Completion> done = queue->SubmitAndWait(
      pinring::MakeFill(region->handle(), 0, kSize, 0x5a, /*user_data=*/7), absl::Seconds(10));
  if (!done.ok()) {
    std::fprintf(stderr, "pinring-consumer: fill: %s\n", done.status().ToString().c_str());
    return false;
  }
  for (std::uint64_t i = 0; i < kSize; ++i) {
    if (region->bytes()[i] != std::byte{0x5a}) {
      std::fprintf(stderr, "pinring-consumer: byte %llu is 0x%02x, expected 0x5a (status %d)\n",
                   static_cast<unsigned long long>(i), static_cast<unsigned>(region->bytes()[i]),
                   done->status);
      return false;
    }
  }
  std::printf("ringd filled %llu bytes; all match\n",
              static_cast<unsigned long long>(done->result));
  *region_out = *std::move(region);
  *queue_out = *std::move(queue);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  pinring::ClientOptions options;
  options.name = "pinring-consumer";
  std::string hold = "0";
  bool reconnect = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--reconnect") {
      reconnect = true;
      continue;
    }
    if (!Flag(arg, "--socket", &options.socket_path) && !Flag(arg, "--name", &options.name) &&
        !Flag(arg, "--hold", &hold)) {
      std::fprintf(stderr, "pinring-consumer: unknown argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }

  absl::StatusOr<pinring::Client> client = pinring::Client::Connect(options);
  if (!client.ok()) {
    std::fprintf(stderr, "pinring-consumer: %s\n", std::string(client.status().message()).c_str());
    return 1;
  }
  pinring::Region region;
  pinring::Queue queue;
  if (!FillAndCheck(*client, &region, &queue)) return 1;
  const int hold_seconds = std::atoi(hold.c_str());
  std::fflush(stdout);
  if (!reconnect) {
    if (hold_seconds > 0) sleep(static_cast<unsigned>(hold_seconds));
    return 0;
  }

  // Wait for ringd to go away (e.g. `systemctl restart ringd`), polling the connection.
  const absl::Time give_up = absl::Now() + absl::Seconds(hold_seconds > 0 ? hold_seconds : 120);
  absl::Status health = client->Health();
  while (health.ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(100));
    health = client->Health();
  }
  if (health.ok()) {
    std::fprintf(stderr, "pinring-consumer: ringd did not go away within the hold time\n");
    return 1;
  }
  std::printf("ringd went away: %s\n", health.ToString().c_str());
  std::fflush(stdout);
  // Drop every handle on the dead connection.
  queue = pinring::Queue();
  region = pinring::Region();
  *client = pinring::Client();

  // Connect again; while ringd restarts, Connect fails with Unavailable: retry that only.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  absl::StatusOr<pinring::Client> again = pinring::Client::Connect(options);
  while (!again.ok() && absl::IsUnavailable(again.status()) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
    again = pinring::Client::Connect(options);
  }
  if (!again.ok()) {
    std::fprintf(stderr, "pinring-consumer: reconnect: %s\n", again.status().ToString().c_str());
    return 1;
  }
  std::printf("reconnected\n");
  if (!FillAndCheck(*again, &region, &queue)) return 1;
  return 0;
}
