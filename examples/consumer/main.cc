// pinring-consumer: the smallest complete pinring client, built out of tree against the installed
// package. Connects to ringd, registers a 64 KiB region, has ringd fill it, and checks the bytes.
//
//   pinring-consumer [--socket=PATH] [--name=NAME] [--hold=SECONDS]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <unistd.h>

#include "absl/time/time.h"
#include "pinring/client.h"
#include "pinring/descriptors.h"

namespace {

constexpr char kUsage[] =
    "usage: pinring-consumer [--socket=PATH] [--name=NAME] [--hold=SECONDS]\n"
    "\n"
    "Connects to ringd, registers a 64 KiB region (fork mode dontfork), asks ringd to fill it\n"
    "with 0x5a through one queue, and checks every byte. Exit status 0 when the bytes match.\n"
    "\n"
    "  --socket=PATH    ringd's socket (default: $PINRING_SOCKET, else /run/pinring/ringd.sock)\n"
    "  --name=NAME      how this client appears in `ringctl status` (default pinring-consumer)\n"
    "  --hold=SECONDS   stay connected this long after the check (to watch it with ringctl)\n"
    "  --help           this text\n";

bool Flag(std::string_view arg, std::string_view name, std::string* value) {
  if (arg.substr(0, name.size()) != name || arg.size() <= name.size() ||
      arg[name.size()] != '=') {
    return false;
  }
  *value = std::string(arg.substr(name.size() + 1));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  pinring::ClientOptions options;
  options.name = "pinring-consumer";
  std::string hold = "0";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
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
  std::printf("connected to %s: client %u, backend %s%s%s\n", client->info().socket_path.c_str(),
              client->info().client_id, client->info().backend.c_str(),
              client->info().device.empty() ? "" : ", device ", client->info().device.c_str());

  constexpr std::uint64_t kSize = 64 * 1024;
  absl::StatusOr<pinring::Region> region = client->CreateRegion({.size = kSize});
  absl::StatusOr<pinring::Queue> queue =
      region.ok() ? client->CreateQueue({}) : absl::StatusOr<pinring::Queue>(region.status());
  if (!queue.ok()) {
    std::fprintf(stderr, "pinring-consumer: %s\n", queue.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<pinring::Completion> done = queue->SubmitAndWait(
      pinring::MakeFill(region->handle(), 0, kSize, 0x5a, /*user_data=*/7), absl::Seconds(10));
  if (!done.ok()) {
    std::fprintf(stderr, "pinring-consumer: fill: %s\n", done.status().ToString().c_str());
    return 1;
  }
  for (std::uint64_t i = 0; i < kSize; ++i) {
    if (region->bytes()[i] != std::byte{0x5a}) {
      std::fprintf(stderr, "pinring-consumer: byte %llu is 0x%02x, expected 0x5a (status %d)\n",
                   static_cast<unsigned long long>(i), static_cast<unsigned>(region->bytes()[i]),
                   done->status);
      return 1;
    }
  }
  std::printf("ringd filled %llu bytes; all match\n",
              static_cast<unsigned long long>(done->result));
  const int hold_seconds = std::atoi(hold.c_str());
  if (hold_seconds > 0) {
    std::fflush(stdout);
    sleep(static_cast<unsigned>(hold_seconds));
  }
  return 0;
}
