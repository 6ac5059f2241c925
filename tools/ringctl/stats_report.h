// ringctl's views of ringd's StatsReply JSON: human-readable tables, selected JSON, and the
// Prometheus text exposition format. Pure functions of the JSON, so tests can check them without
// a ringd.
//
// The reader is tolerant on purpose: ringd owns the schema, and a newer ringd may add fields.
// Known fields are shown in a fixed order; unknown scalar fields are shown after them; a missing
// field is shown as "-". Queues and regions are read from top-level arrays ("queues", "regions")
// or from arrays inside each client object (then tagged with the client's id).
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace pinring::ringctl {

// Parses ringd's reply text. InvalidArgument (with the parser's message) if it is not a JSON object.
absl::StatusOr<nlohmann::json> ParseStats(absl::string_view text);

// The rows of one section: "clients", "queues" or "regions", as an array of objects.
nlohmann::json Rows(const nlohmann::json& stats, absl::string_view section);

// `ringctl status`: ringd's scalar facts, then the clients, queues and regions tables.
std::string FormatStatus(const nlohmann::json& stats);

// One table: `section` is "clients", "queues" or "regions".
std::string FormatSection(const nlohmann::json& stats, absl::string_view section);

// `ringctl counters`: ops by opcode, errors by code, doorbells, wakeups, bytes, registrations.
std::string FormatCounters(const nlohmann::json& stats);

// `ringctl metrics`: Prometheus text format 0.0.4, every metric with HELP and TYPE lines.
std::string FormatPrometheus(const nlohmann::json& stats);

// "1.5 MiB" style, for byte counts in tables.
std::string HumanBytes(double bytes);

}  // namespace pinring::ringctl
