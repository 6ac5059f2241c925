// ringctl: look at a running ringd. One StatsRequest (pinring::Client::Stats()), shown as tables,
// JSON, or Prometheus metrics. See ringctl(1) and `ringctl --help`.
#include <cstdio>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "pinring/client.h"
#include "stats_report.h"
#include "tools/common/cli_help.h"

ABSL_FLAG(std::string, socket, "",
          "ringd's socket; default $PINRING_SOCKET, else " PINRING_RINGCTL_DEFAULT_SOCKET);
ABSL_FLAG(bool, json, false, "print JSON instead of tables (status, clients, queues, regions, counters)");

namespace {

constexpr char kUsage[] = R"(look at a running ringd.

usage: ringctl [--socket=PATH] [--json] COMMAND

commands:
  status     ringd's backend and totals, then the clients, queues and regions tables
             (pid, uid, name; ring sizes and doorbell mode; pinned bytes and fork mode)
  clients    only the clients table
  queues     only the queues table
  regions    only the regions table
  counters   ops by opcode, errors by code, doorbells, wakeups, bytes moved, registrations
  metrics    the same counters and gauges in the Prometheus text format (0.0.4)
  raw        ringd's stats JSON exactly as received
  help       this text

flags:
  --socket=PATH  ringd's socket (default: $PINRING_SOCKET, else )" PINRING_RINGCTL_DEFAULT_SOCKET R"()
  --json         JSON output for status, clients, queues, regions and counters
  --help         this text (--helpfull: every flag, Abseil's included)

ringctl is a ringd client like any other: it needs to be root or in the `pinring` group.
Exit status: 0 ok; 1 ringd unreachable or its reply unusable (the message says what to do);
2 usage error.

examples:
  ringctl status
  ringctl counters --json
  ringctl metrics > /var/lib/prometheus/node-exporter/pinring.prom)";

int Usage(const std::string& error) {
  std::fprintf(stderr, "ringctl: %s\n\n%s\n", error.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // --help prints the usage above (it lists ringctl's flags), on stdout, and exits 0.
  pinring::cli::HandleHelp(argc, argv, kUsage, {});
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    return Usage(args.size() < 2 ? "no command given" : "exactly one command, please");
  }
  const absl::string_view command = args[1];
  static constexpr absl::string_view kCommands[] = {"status",  "clients", "queues", "regions",
                                                    "counters", "metrics", "raw",    "help"};
  bool known = false;
  for (absl::string_view c : kCommands) known = known || c == command;
  if (!known) return Usage(absl::StrCat("unknown command '", command, "'"));
  if (command == "help") {
    std::printf("ringctl: %s\n", kUsage);
    return 0;
  }

  pinring::ClientOptions options;
  options.socket_path = absl::GetFlag(FLAGS_socket);
  options.name = "ringctl";
  absl::StatusOr<pinring::Client> client = pinring::Client::Connect(options);
  if (!client.ok()) {
    // Connect's message names the fix (start ringd / join the pinring group); add ours.
    std::fprintf(stderr, "ringctl: %s\n", std::string(client.status().message()).c_str());
    if (absl::IsUnavailable(client.status()) || absl::IsNotFound(client.status())) {
      std::fprintf(stderr, "ringctl: is ringd listening elsewhere? pass --socket=PATH\n");
    }
    return 1;
  }
  absl::StatusOr<std::string> text = client->Stats();
  if (!text.ok()) {
    std::fprintf(stderr, "ringctl: stats request to ringd at %s failed: %s\n",
                 client->info().socket_path.c_str(), text.status().ToString().c_str());
    return 1;
  }
  if (command == "raw") {
    std::printf("%s\n", text->c_str());
    return 0;
  }
  absl::StatusOr<nlohmann::json> stats = pinring::ringctl::ParseStats(*text);
  if (!stats.ok()) {
    std::fprintf(stderr, "ringctl: %s (`ringctl raw` prints it as received)\n",
                 std::string(stats.status().message()).c_str());
    return 1;
  }
  const bool json = absl::GetFlag(FLAGS_json);
  std::string out;
  if (command == "metrics") {
    out = pinring::ringctl::FormatPrometheus(*stats);
  } else if (command == "status") {
    out = json ? stats->dump(2) + "\n" : pinring::ringctl::FormatStatus(*stats);
  } else if (command == "counters") {
    out = json ? nlohmann::json{{"counters", stats->value("counters", nlohmann::json::object())}}
                         .dump(2) + "\n"
               : pinring::ringctl::FormatCounters(*stats);
  } else {  // clients, queues, regions
    out = json ? pinring::ringctl::Rows(*stats, command).dump(2) + "\n"
               : pinring::ringctl::FormatSection(*stats, command);
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}
