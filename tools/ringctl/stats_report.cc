#include "stats_report.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace pinring::ringctl {
namespace {

using nlohmann::json;

// Column order for the known fields of each section; other scalar fields follow alphabetically.
const std::vector<std::string>& PreferredColumns(absl::string_view section) {
  static const std::vector<std::string> kClients = {
      "id",      "pid",          "uid",          "gid",      "name",
      "queues",  "regions",      "pinned_bytes", "odp_bytes", "registered_bytes"};
  static const std::vector<std::string> kQueues = {
      "client", "id", "sq_entries", "cq_entries", "doorbell", "completion_wait",
      "adaptive_poll_us", "ring_bytes", "completed", "error"};
  static const std::vector<std::string> kRegions = {
      "client",    "handle",          "size",      "pinned_bytes", "odp_bytes",
      "fork_mode", "device_writable", "huge_pages"};
  static const std::vector<std::string> kRdma = {
      "id",      "kind",    "remote",  "sq_entries", "cq_entries", "regions", "descriptors",
      "inline_descriptors", "pending", "busy"};
  static const std::vector<std::string> kNone;
  if (section == "rdma connections") return kRdma;
  if (section == "clients") return kClients;
  if (section == "queues") return kQueues;
  if (section == "regions") return kRegions;
  return kNone;
}

bool IsBytesKey(absl::string_view key) {
  return key == "size" || key.find("bytes") != absl::string_view::npos;
}

std::string Cell(const json& v, absl::string_view key) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number_unsigned() || v.is_number_integer()) {
    if (IsBytesKey(key)) return HumanBytes(v.get<double>());
    return v.dump();
  }
  if (v.is_number_float()) return absl::StrFormat("%.3f", v.get<double>());
  if (v.is_array()) return absl::StrCat(v.size());  // e.g. "queues": [...] in a client row
  return v.dump();
}

// A left-aligned text table with a header row and a rule under it.
std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      absl::StrAppend(&l, "  ", cells[c],
                      c + 1 == cells.size() ? "" : std::string(width[c] - cells[c].size(), ' '));
    }
    absl::StrAppend(&out, l, "\n");
  };
  line(header);
  std::vector<std::string> rule;
  for (std::size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& r : rows) line(r);
  return out;
}

std::string SectionTitle(absl::string_view section, std::size_t n) {
  return absl::StrCat(section, " (", n, ")\n");
}

// Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*.
std::string MetricName(absl::string_view raw) {
  std::string s(raw);
  for (char& ch : s) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_';
    if (!ok) ch = '_';
  }
  if (!s.empty() && s[0] >= '0' && s[0] <= '9') s.insert(0, "_");
  return s;
}

// Label values escape backslash, double quote and newline.
std::string LabelValue(absl::string_view raw) {
  std::string s;
  for (char ch : raw) {
    if (ch == '\\') s += "\\\\";
    else if (ch == '"') s += "\\\"";
    else if (ch == '\n') s += "\\n";
    else s += ch;
  }
  return s;
}

std::string Number(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  return v.dump();
}

// ringd's global counters: "global" (or "counters" from an older ringd).
const json& Counters(const json& stats) {
  static const json kEmpty = json::object();
  for (const char* key : {"global", "counters"}) {
    auto it = stats.find(key);
    if (it != stats.end() && it->is_object()) return *it;
  }
  return kEmpty;
}

// ringd's own facts (backend, device, pid, uptime, ...): the "ringd" object.
const json& Facts(const json& stats) {
  static const json kEmpty = json::object();
  auto it = stats.find("ringd");
  return it != stats.end() && it->is_object() ? *it : kEmpty;
}

// Byte amounts held right now (registered_bytes, pinned_bytes) are gauges; everything else in the
// counters object only grows.
bool IsGaugeKey(absl::string_view key) {
  return key.size() > 6 && key.substr(key.size() - 6) == "_bytes";
}

// The label a nested counter object is broken down by.
std::string LabelFor(absl::string_view group) {
  if (group == "ops") return "opcode";
  if (group == "completions") return "status";
  if (group == "errors") return "code";
  return "kind";
}

std::string HelpFor(absl::string_view key) {
  static const std::map<std::string, std::string> kHelp = {
      {"ops", "Descriptors executed by ringd, by opcode."},
      {"completions", "Completions written by ringd, by completion status (ok or an error code)."},
      {"bytes_moved", "Bytes the backend moved for copy and fill descriptors."},
      {"doorbells", "Doorbells ringd consumed (the client rang its eventfd)."},
      {"wakeups", "Completion wakeups ringd sent to waiting clients."},
      {"registrations", "Memory registrations (rings and regions pinned)."},
      {"deregistrations", "Memory deregistrations."},
      {"queues_created", "Queues created."},
      {"queue_errors", "Queues stopped because a client corrupted an index."},
  };
  auto it = kHelp.find(std::string(key));
  return it != kHelp.end() ? it->second : absl::StrCat("ringd counter ", key, ".");
}

void AppendMetric(std::string* out, absl::string_view name, absl::string_view type,
                  absl::string_view help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

// The rdma transport's counters and gauges, and its per-connection descriptor counts.
void AppendRdmaMetrics(std::string* out, const json& stats) {
  auto r = stats.find("rdma");
  if (r == stats.end() || !r->is_object()) return;
  struct Known {
    const char* key;
    const char* name;
    const char* type;
    const char* help;
  };
  static constexpr Known kKnown[] = {
      {"connected", "pinring_rdma_connections", "gauge",
       "Connections of the rdma transport now (clients and peer ringds)."},
      {"accepted", "pinring_rdma_accepted_total", "counter", "rdma connections accepted."},
      {"rejected", "pinring_rdma_rejected_total", "counter", "rdma connection requests rejected."},
      {"failed", "pinring_rdma_failed_total", "counter",
       "rdma connections ended by an error (protocol or transport)."},
      {"closed", "pinring_rdma_closed_total", "counter", "rdma connections closed by the client."},
      {"descriptors", "pinring_rdma_descriptors_total", "counter",
       "Descriptors the rdma transport executed."},
      {"inline_descriptors", "pinring_rdma_inline_descriptors_total", "counter",
       "Of those, descriptors that arrived inline in a doorbell (no RDMA READ)."},
      {"grants", "pinring_rdma_grants", "gauge", "Regions exported to other clients now."},
      {"peer_links", "pinring_rdma_peer_links", "gauge", "ringd's links to other ringds now."},
      {"ops_in_flight", "pinring_rdma_ops_in_flight", "gauge",
       "RDMA operations of ringd in flight now."},
  };
  for (const Known& k : kKnown) {
    auto v = r->find(k.key);
    if (v == r->end() || !v->is_number()) continue;
    AppendMetric(out, k.name, k.type, k.help);
    absl::StrAppend(out, k.name, " ", Number(*v), "\n");
  }
  bool header = false;
  for (const json& c : Rows(stats, "rdma connections")) {
    if (!c.contains("descriptors") || !c["descriptors"].is_number()) continue;
    if (!header) {
      AppendMetric(out, "pinring_rdma_connection_descriptors_total", "counter",
                   "Descriptors the rdma transport executed for one connection.");
      header = true;
    }
    const json id = c.value("id", json());
    absl::StrAppend(out, "pinring_rdma_connection_descriptors_total{connection=\"",
                    LabelValue(id.is_string() ? id.get<std::string>() : id.dump()),
                    "\",kind=\"", LabelValue(c.value("kind", "")), "\",remote=\"",
                    LabelValue(c.value("remote", "")), "\"} ", Number(c["descriptors"]), "\n");
  }
}

}  // namespace

absl::StatusOr<json> ParseStats(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ringd's stats reply is not valid JSON (", text.size(), " bytes)"));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError("ringd's stats reply is JSON but not an object");
  }
  return j;
}

json Rows(const json& stats, absl::string_view section) {
  json rows = json::array();
  const std::string key(section);
  if (section == "rdma connections") {
    // The rdma transport's own section (admin scope only: rdma clients carry no uid).
    auto r = stats.find("rdma");
    if (r == stats.end() || !r->is_object()) return rows;
    auto c = r->find("connections");
    if (c == r->end() || !c->is_array()) return rows;
    for (const json& row : *c) {
      if (row.is_object()) rows.push_back(row);
    }
    return rows;
  }
  if (auto it = stats.find(key); it != stats.end() && it->is_array()) {
    for (const json& r : *it) {
      if (r.is_object()) rows.push_back(r);
    }
    return rows;
  }
  if (section == "clients") return rows;
  // Nested under each client: tag each row with its client's id.
  for (const json& client : Rows(stats, "clients")) {
    auto it = client.find(key);
    if (it == client.end() || !it->is_array()) continue;
    const json id = client.value("id", json());
    for (const json& r : *it) {
      if (!r.is_object()) continue;
      json row = r;
      if (!row.contains("client")) row["client"] = id;
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

std::string HumanBytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%.0f B", bytes) : absl::StrFormat("%.1f %s", bytes, kUnits[u]);
}

std::string FormatSection(const json& stats, absl::string_view section) {
  const json rows = Rows(stats, section);
  std::string out = SectionTitle(section, rows.size());
  if (rows.empty()) return absl::StrCat(out, "  (none)\n");
  // Columns: the known ones that occur, then every other scalar (or array, shown as a count).
  std::vector<std::string> columns;
  for (const std::string& c : PreferredColumns(section)) {
    for (const json& r : rows) {
      if (r.contains(c)) {
        columns.push_back(c);
        break;
      }
    }
  }
  std::vector<std::string> extra;
  for (const json& r : rows) {
    for (auto it = r.begin(); it != r.end(); ++it) {
      // Nested objects (per-client counters) belong to other views; of the arrays, a client's
      // queues and regions are shown as counts here and listed in their own tables.
      if (it->is_object()) continue;
      if (it->is_array() && it.key() != "queues" && it.key() != "regions") continue;
      if (std::find(columns.begin(), columns.end(), it.key()) == columns.end() &&
          std::find(extra.begin(), extra.end(), it.key()) == extra.end()) {
        extra.push_back(it.key());
      }
    }
  }
  std::sort(extra.begin(), extra.end());
  columns.insert(columns.end(), extra.begin(), extra.end());
  std::vector<std::vector<std::string>> cells;
  for (const json& r : rows) {
    std::vector<std::string> row;
    for (const std::string& c : columns) row.push_back(Cell(r.value(c, json()), c));
    cells.push_back(std::move(row));
  }
  return absl::StrCat(out, Table(columns, cells));
}

std::string FormatStatus(const json& stats) {
  std::string out = "ringd\n";
  const json& facts = Facts(stats);
  if (facts.empty()) absl::StrAppend(&out, "  (ringd reported no facts)\n");
  for (auto it = facts.begin(); it != facts.end(); ++it) {
    if (it->is_object() || it->is_array()) continue;
    const std::string& key = it.key();
    absl::StrAppend(&out, "  ", key, ":", std::string(key.size() < 20 ? 20 - key.size() : 1, ' '),
                    Cell(*it, key), "\n");
  }
  for (absl::string_view section : {"clients", "queues", "regions"}) {
    absl::StrAppend(&out, "\n", FormatSection(stats, section));
  }
  // The rdma transport: its facts, then its connections (clients and peer ringds).
  if (auto r = stats.find("rdma"); r != stats.end() && r->is_object()) {
    absl::StrAppend(&out, "\nrdma transport\n");
    for (auto it = r->begin(); it != r->end(); ++it) {
      if (it->is_object() || it->is_array()) continue;
      const std::string& key = it.key();
      absl::StrAppend(&out, "  ", key, ":",
                      std::string(key.size() < 20 ? 20 - key.size() : 1, ' '), Cell(*it, key),
                      "\n");
    }
    if (r->contains("connections")) {
      absl::StrAppend(&out, "\n", FormatSection(stats, "rdma connections"));
    }
  }
  return out;
}

std::string FormatCounters(const json& stats) {
  const json& counters = Counters(stats);
  std::string out;
  if (counters.empty()) return "counters: ringd reported none\n";
  // Breakdowns first: ops by opcode, then errors by code (every completion status but ok).
  if (auto ops = counters.find("ops"); ops != counters.end() && ops->is_object()) {
    std::vector<std::vector<std::string>> rows;
    for (auto it = ops->begin(); it != ops->end(); ++it) rows.push_back({it.key(), Number(*it)});
    absl::StrAppend(&out, "ops by opcode\n", Table({"opcode", "count"}, rows), "\n");
  }
  if (auto st = counters.find("completions"); st != counters.end() && st->is_object()) {
    std::vector<std::vector<std::string>> rows;
    std::string ok = "-";
    for (auto it = st->begin(); it != st->end(); ++it) {
      if (it.key() == "ok") {
        ok = Number(*it);
        continue;
      }
      rows.push_back({it.key(), Number(*it)});
    }
    absl::StrAppend(&out, "errors by code (completions not ok; ", ok, " ok)\n",
                    Table({"code", "count"}, rows), "\n");
  }
  std::vector<std::vector<std::string>> rows;
  for (auto it = counters.begin(); it != counters.end(); ++it) {
    if (it.key() == "ops" || it.key() == "completions") continue;
    if (it->is_object()) {
      for (auto sub = it->begin(); sub != it->end(); ++sub) {
        rows.push_back({absl::StrCat(it.key(), ".", sub.key()), Number(*sub)});
      }
      continue;
    }
    std::string v = Number(*it);
    if (IsBytesKey(it.key()) && it->is_number()) {
      absl::StrAppend(&v, " (", HumanBytes(it->get<double>()), ")");
    }
    rows.push_back({it.key(), v});
  }
  absl::StrAppend(&out, "totals\n", Table({"counter", "value"}, rows));

  // Per client: the same counters, one row each.
  std::vector<std::vector<std::string>> per_client;
  for (const json& c : Rows(stats, "clients")) {
    const json cc = c.value("counters", json::object());
    if (!cc.is_object()) continue;
    std::uint64_t ops = 0, errors = 0;
    const json by_opcode = cc.value("ops", json::object());
    for (auto it = by_opcode.begin(); it != by_opcode.end(); ++it) {
      if (it->is_number_unsigned()) ops += it->get<std::uint64_t>();
    }
    const json by_status = cc.value("completions", json::object());
    for (auto it = by_status.begin(); it != by_status.end(); ++it) {
      if (it.key() != "ok" && it->is_number_unsigned()) errors += it->get<std::uint64_t>();
    }
    per_client.push_back({Cell(c.value("id", json()), "id"), Cell(c.value("name", json()), "name"),
                          absl::StrCat(ops), absl::StrCat(errors),
                          Cell(cc.value("bytes_moved", json()), "bytes_moved"),
                          Cell(cc.value("doorbells", json()), "doorbells"),
                          Cell(cc.value("wakeups", json()), "wakeups"),
                          Cell(cc.value("registrations", json()), "registrations")});
  }
  if (!per_client.empty()) {
    absl::StrAppend(&out, "\nper client\n",
                    Table({"id", "name", "ops", "errors", "bytes_moved", "doorbells", "wakeups",
                           "registrations"},
                          per_client));
  }
  return out;
}

std::string FormatPrometheus(const json& stats) {
  std::string out;
  AppendMetric(&out, "pinring_up", "gauge", "1 when ringd answered the stats request.");
  absl::StrAppend(&out, "pinring_up 1\n");

  // ringd's string facts as one info metric; its numeric facts as gauges (counters where they
  // only grow).
  const json& facts = Facts(stats);
  std::vector<std::string> info;
  for (auto it = facts.begin(); it != facts.end(); ++it) {
    if (it->is_string()) {
      info.push_back(absl::StrCat(MetricName(it.key()), "=\"", LabelValue(it->get<std::string>()),
                                  "\""));
    }
  }
  if (!info.empty()) {
    AppendMetric(&out, "pinring_info", "gauge", "ringd's backend and device, as labels.");
    absl::StrAppend(&out, "pinring_info{", absl::StrJoin(info, ","), "} 1\n");
  }
  for (auto it = facts.begin(); it != facts.end(); ++it) {
    if (!it->is_number() && !it->is_boolean()) continue;
    std::string name = absl::StrCat("pinring_", MetricName(it.key()));
    std::string type = "gauge";
    if (it.key() == "uptime_s") {
      name = "pinring_uptime_seconds";
    } else if (it.key() == "clients_accepted") {
      name = "pinring_clients_accepted_total";
      type = "counter";
    }
    AppendMetric(&out, name, type, absl::StrCat("ringd's ", it.key(), "."));
    absl::StrAppend(&out, name, " ", Number(*it), "\n");
  }
  for (absl::string_view section : {"clients", "queues", "regions"}) {
    const std::string name = absl::StrCat("pinring_", section);
    AppendMetric(&out, name, "gauge", absl::StrCat("Number of ", section, " ringd holds now."));
    absl::StrAppend(&out, name, " ", Rows(stats, section).size(), "\n");
  }
  // Pinned and registered bytes per client: what an operator watches against the limits.
  const json clients = Rows(stats, "clients");
  for (const char* key : {"pinned_bytes", "odp_bytes", "registered_bytes"}) {
    const std::string name = absl::StrCat("pinring_client_", key);
    bool header = false;
    for (const json& c : clients) {
      if (!c.contains(key) || !c[key].is_number()) continue;
      if (!header) {
        AppendMetric(&out, name, "gauge",
                     absl::StrCat("Bytes one client has ",
                                  key[0] == 'p'   ? "pinned"
                                  : key[0] == 'o' ? "registered on demand (odp, not pinned)"
                                                  : "registered",
                                  " with ringd (rings and regions)."));
        header = true;
      }
      const json id = c.value("id", json());
      absl::StrAppend(&out, name, "{client=\"",
                      LabelValue(id.is_string() ? id.get<std::string>() : id.dump()), "\",name=\"",
                      LabelValue(c.value("name", "")), "\"} ", Number(c[key]), "\n");
    }
  }

  AppendRdmaMetrics(&out, stats);

  const json& counters = Counters(stats);
  for (auto it = counters.begin(); it != counters.end(); ++it) {
    if (IsGaugeKey(it.key())) {
      if (!it->is_number()) continue;
      const std::string name = absl::StrCat("pinring_", MetricName(it.key()));
      AppendMetric(&out, name, "gauge", absl::StrCat("Bytes ringd holds now (", it.key(), ")."));
      absl::StrAppend(&out, name, " ", Number(*it), "\n");
      continue;
    }
    const std::string name = absl::StrCat("pinring_", MetricName(it.key()), "_total");
    if (it->is_object()) {
      AppendMetric(&out, name, "counter", HelpFor(it.key()));
      const std::string label = LabelFor(it.key());
      for (auto sub = it->begin(); sub != it->end(); ++sub) {
        if (!sub->is_number()) continue;
        absl::StrAppend(&out, name, "{", label, "=\"", LabelValue(sub.key()), "\"} ",
                        Number(*sub), "\n");
      }
    } else if (it->is_number()) {
      AppendMetric(&out, name, "counter", HelpFor(it.key()));
      absl::StrAppend(&out, name, " ", Number(*it), "\n");
    }
  }
  return out;
}

}  // namespace pinring::ringctl
