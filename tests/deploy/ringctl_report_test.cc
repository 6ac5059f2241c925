// ringctl's views of a StatsReply: what an operator reads (tables) and what Prometheus scrapes.
#include "stats_report.h"

#include <gtest/gtest.h>

#include <string>

namespace pinring::ringctl {
namespace {

using nlohmann::json;

json Sample() {
  // The shape ringd's StatsReply has (service/stats).
  return json::parse(R"({
    "ringd": {"backend": "cpu", "device": "", "pid": 99, "uptime_s": 7, "clients_accepted": 3},
    "clients": [
      {"id": 4, "pid": 1234, "uid": 1001, "gid": 1001, "name": "pinring-hello",
       "pinned_bytes": 1114112, "registered_bytes": 1142784,
       "counters": {"ops": {"nop": 2, "fill": 5}, "completions": {"ok": 6, "out-of-bounds": 1},
                    "bytes_moved": 65536, "doorbells": 3, "wakeups": 1, "registrations": 3},
       "queues": [{"id": 1, "sq_entries": 256, "cq_entries": 512, "doorbell": "eventfd"}],
       "regions": [{"handle": 1, "size": 1048576, "pinned_bytes": 1048576, "fork_mode": "dontfork"},
                   {"handle": 2, "size": 4096, "pinned_bytes": 4096, "fork_mode": "shared"}]}
    ],
    "global": {"ops": {"nop": 2, "copy": 0, "checksum": 0, "fill": 5},
               "completions": {"ok": 6, "out-of-bounds": 1}, "registered_bytes": 1142784,
               "bytes_moved": 65536, "doorbells": 3, "wakeups": 1, "registrations": 3}
  })");
}

TEST(RingctlReport, RejectsNonJsonAndNonObjects) {
  EXPECT_FALSE(ParseStats("not json").ok());
  EXPECT_FALSE(ParseStats("[1,2]").ok());
  ASSERT_TRUE(ParseStats(R"({"clients": []})").ok());
}

TEST(RingctlReport, NestedQueuesAndRegionsAreTaggedWithTheirClient) {
  const json regions = Rows(Sample(), "regions");
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0]["client"], 4);
  EXPECT_EQ(regions[1]["fork_mode"], "shared");
  EXPECT_EQ(Rows(Sample(), "queues").size(), 1u);
}

TEST(RingctlReport, StatusShowsClientsQueuesRegionsWithPinnedBytesAndForkMode) {
  const std::string s = FormatStatus(Sample());
  EXPECT_NE(s.find("backend:"), std::string::npos) << s;
  EXPECT_NE(s.find("uptime_s:"), std::string::npos) << s;
  EXPECT_NE(s.find("clients (1)"), std::string::npos) << s;
  EXPECT_NE(s.find("pinring-hello"), std::string::npos) << s;
  EXPECT_NE(s.find("1.1 MiB"), std::string::npos) << s;  // the client's pinned bytes
  EXPECT_NE(s.find("queues (1)"), std::string::npos) << s;
  EXPECT_NE(s.find("eventfd"), std::string::npos) << s;
  EXPECT_NE(s.find("regions (2)"), std::string::npos) << s;
  EXPECT_NE(s.find("dontfork"), std::string::npos) << s;
  EXPECT_NE(s.find("fork_mode"), std::string::npos) << s;
}

// Fork mode odp: bytes registered on demand are shown and exported apart from pinned ones.
TEST(RingctlReport, OdpBytesHaveTheirColumnAndMetric) {
  const json st = json::parse(R"({
    "clients": [{"id": 7, "name": "odp", "pinned_bytes": 8192, "odp_bytes": 2097152,
                 "registered_bytes": 2105344,
                 "regions": [{"handle": 1, "size": 2097152, "pinned_bytes": 0,
                              "odp_bytes": 2097152, "fork_mode": "odp"}]}],
    "global": {"registered_bytes": 2105344, "odp_bytes": 2097152}
  })");
  const std::string s = FormatStatus(st);
  EXPECT_NE(s.find("odp_bytes"), std::string::npos) << s;
  EXPECT_NE(s.find("2.0 MiB"), std::string::npos) << s;
  EXPECT_LT(s.find("odp_bytes"), s.find("registered_bytes")) << s;  // beside pinned_bytes
  const std::string m = FormatPrometheus(st);
  EXPECT_NE(m.find("# TYPE pinring_client_odp_bytes gauge\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pinring_client_odp_bytes{client=\"7\",name=\"odp\"} 2097152\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("pinring_odp_bytes 2097152\n"), std::string::npos) << m;
}

TEST(RingctlReport, EmptySectionsSayNone) {
  const std::string s = FormatSection(json::parse(R"({"clients": []})"), "clients");
  EXPECT_EQ(s, "clients (0)\n  (none)\n");
}

TEST(RingctlReport, CountersBreakDownOpsAndErrors) {
  const std::string s = FormatCounters(Sample());
  EXPECT_NE(s.find("ops by opcode"), std::string::npos) << s;
  EXPECT_NE(s.find("fill"), std::string::npos) << s;
  EXPECT_NE(s.find("errors by code (completions not ok; 6 ok)"), std::string::npos) << s;
  EXPECT_NE(s.find("out-of-bounds"), std::string::npos) << s;
  EXPECT_NE(s.find("64.0 KiB"), std::string::npos) << s;
  EXPECT_NE(s.find("doorbells"), std::string::npos) << s;
  EXPECT_NE(s.find("per client"), std::string::npos) << s;
  EXPECT_NE(s.find("pinring-hello  7    1"), std::string::npos) << s;  // ops, errors
}

TEST(RingctlReport, PrometheusHasHelpTypeAndLabelledCounters) {
  const std::string m = FormatPrometheus(Sample());
  EXPECT_NE(m.find("# TYPE pinring_ops_total counter\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pinring_ops_total{opcode=\"fill\"} 5\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pinring_completions_total{status=\"out-of-bounds\"} 1\n"), std::string::npos);
  EXPECT_NE(m.find("pinring_bytes_moved_total 65536\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pinring_clients 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pinring_regions 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pinring_client_pinned_bytes{client=\"4\",name=\"pinring-hello\"} 1114112\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("pinring_info{backend=\"cpu\",device=\"\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pinring_uptime_seconds 7\n"), std::string::npos) << m;
  EXPECT_NE(m.find("# TYPE pinring_clients_accepted_total counter\n"), std::string::npos) << m;
  // Bytes held now are a gauge, not a counter.
  EXPECT_NE(m.find("# TYPE pinring_registered_bytes gauge\npinring_registered_bytes 1142784\n"),
            std::string::npos)
      << m;
  // Every sample line's metric has a TYPE line before it.
  std::size_t pos = 0;
  while (pos < m.size()) {
    const std::size_t end = m.find('\n', pos);
    const std::string line = m.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const std::string name = line.substr(0, line.find_first_of("{ "));
    EXPECT_NE(m.find("# TYPE " + name + " "), std::string::npos) << line;
  }
}

TEST(RingctlReport, PrometheusEscapesLabelValues) {
  const json s = json::parse(R"({"clients": [{"id": 1, "name": "a\"b\\c\nd", "pinned_bytes": 1}]})");
  EXPECT_NE(FormatPrometheus(s).find(R"(name="a\"b\\c\nd")"), std::string::npos);
}

TEST(RingctlReport, RdmaSectionHasItsTableAndMetrics) {
  nlohmann::json s = Sample();
  s["rdma"] = {{"port", 18515}, {"connected", 2}, {"accepted", 5}, {"failed", 1},
               {"descriptors", 42}, {"grants", 1}, {"peer_links", 0}, {"ops_in_flight", 0}};
  s["rdma"]["connections"] = nlohmann::json::array(
      {{{"id", 3}, {"kind", "client"}, {"remote", "10.0.0.1:40000"}, {"sq_entries", 16},
        {"descriptors", 40}, {"busy", false}},
       {{"id", 4}, {"kind", "peer"}, {"remote", "10.0.0.2:41000"}, {"descriptors", 2}}});
  const std::string st = FormatStatus(s);
  EXPECT_NE(st.find("rdma transport"), std::string::npos) << st;
  EXPECT_NE(st.find("rdma connections (2)"), std::string::npos) << st;
  EXPECT_NE(st.find("10.0.0.2:41000"), std::string::npos) << st;
  const std::string m = FormatPrometheus(s);
  EXPECT_NE(m.find("# TYPE pinring_rdma_connections gauge\npinring_rdma_connections 2\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("pinring_rdma_failed_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(pinring_rdma_connection_descriptors_total{connection="4",kind="peer",)"
                   R"(remote="10.0.0.2:41000"} 2)"),
            std::string::npos)
      << m;
  // A non-admin reply has only the port: no table, no connection metrics.
  s["rdma"] = {{"port", 18515}};
  EXPECT_EQ(FormatStatus(s).find("rdma connections"), std::string::npos);
  EXPECT_EQ(FormatPrometheus(s).find("pinring_rdma_connection_descriptors_total"),
            std::string::npos);
}

}  // namespace
}  // namespace pinring::ringctl
