// pinring-bench-tenants: how one ringd shares its shm transport out among tenants (issue 16,
// item 4). Each benchmark starts its own ringd (cpu backend, --pollers=P) and N client threads,
// each with its own connection (a tenant of its own) and Q busy-poll queues:
//
//   BM_Tenants/clients:N/pollers:P/queues:Q
//       every client runs NOP round trips of kBatch descriptors on its queues in turn (commit
//       kBatch, wait for all kBatch completions) for a fixed time. Reported: the aggregate
//       ops/s, the p50/p99/p99.9 of one round trip over all clients' samples, and fairness (the
//       slowest client's round trips over the fastest's).
//
// The anchor of every row is the single-tenant row with the same pollers, in the same run:
// throughput and p99 scale against it. Queues are busy-poll (ringd's pollers spin on them);
// clients are not pinned and sleep on their completion eventfds while ringd serves them.
// One iteration = the whole timed phase (Iterations(1)); no timing is asserted anywhere.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "pinring/client.h"
#include "pinring/descriptors.h"
#include "pinring/queue.h"
#include "ringd_fixture.h"
#include "tests/common/ringd_process.h"

namespace pinring::bench {
namespace {

constexpr std::uint32_t kBatch = 8;  // NOPs per round trip

double g_seconds = 1.5;  // timed phase per row; --pinring_quick shortens it

// Waits for `n` completions on `q`, asleep on the completion eventfd (ringd signals it): with
// more tenants than cores a spinning client would only take the core from the one ringd serves.
bool WaitFor(Queue& q, std::uint32_t n) { return q.WaitCompletions(n, absl::Seconds(10)).ok(); }

struct TenantResult {
  std::vector<std::uint64_t> rtt_ticks;  // one per round trip
  std::uint64_t ops = 0;
  std::string error;
};

// One tenant: its own connection and `queues` queues, round trips until `stop`.
void RunTenant(const std::string& socket, int index, int queues, const std::atomic<bool>* go,
               const std::atomic<bool>* stop, std::atomic<int>* ready, TenantResult* out) {
  ClientOptions co;
  co.socket_path = socket;
  co.name = "tenant-" + std::to_string(index);
  auto c = Client::Connect(co);
  std::vector<Queue> qs;
  if (!c.ok()) out->error = "Client::Connect: " + c.status().ToString();
  for (int k = 0; out->error.empty() && k < queues; ++k) {
    QueueOptions qo;
    qo.sq_entries = 64;
    qo.doorbell = wire::DoorbellMode::kBusyPoll;
    qo.completion_wait = wire::CompletionWait::kBlock;
    auto q = c->CreateQueue(qo);
    if (!q.ok()) {
      out->error = "CreateQueue: " + q.status().ToString();
    } else if (!WarmUp(*q)) {
      out->error = "warm-up: " + q->Health().ToString();
    } else {
      qs.push_back(std::move(*q));
    }
  }
  ready->fetch_add(1);  // relaxed would do; the count only gates the start
  while (!go->load(std::memory_order_acquire)) sched_yield();
  if (!out->error.empty()) return;
  out->rtt_ticks.reserve(1 << 16);
  std::uint64_t seq = 0;
  for (std::size_t k = 0; !stop->load(std::memory_order_relaxed); k = (k + 1) % qs.size()) {
    Queue& q = qs[k];
    const std::uint64_t t0 = Ticks();
    while (q.Reserve(kBatch) < kBatch) sched_yield();
    for (std::uint32_t i = 0; i < kBatch; ++i) q.Slot(i) = MakeNop(++seq);
    q.Commit(kBatch);
    if (!WaitFor(q, kBatch)) {
      out->error = "round trip: " + q.Health().ToString();
      return;
    }
    for (std::uint32_t i = 0; i < kBatch; ++i) {
      if (q.CompletionAt(i).user_data != seq - kBatch + 1 + i) {
        out->error = "lost or out-of-order completion";
        return;
      }
    }
    q.ReleaseCompletions(kBatch);
    out->rtt_ticks.push_back(Ticks() - t0);
    out->ops += kBatch;
  }
}

void BM_Tenants(benchmark::State& state) {
  const int clients = static_cast<int>(state.range(0));
  const int pollers = static_cast<int>(state.range(1));
  const int queues = static_cast<int>(state.range(2));
  auto ringd = testing::RingdProcess::Start({"--backend=cpu", "--rdma_port=0",
                                             "--pollers=" + std::to_string(pollers)});
  if (!ringd.ok()) return state.SkipWithError(("ringd: " + ringd.status().ToString()).c_str());
  std::vector<TenantResult> results(clients);
  std::atomic<bool> go{false}, stop{false};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back(RunTenant, (*ringd)->socket_path(), i, queues, &go, &stop, &ready,
                         &results[i]);
  }
  // Every tenant connected and warmed up (or failed), within a minute.
  const absl::Time setup_deadline = absl::Now() + absl::Seconds(60);
  while (ready.load() < clients && absl::Now() < setup_deadline) sched_yield();
  if (ready.load() < clients) {
    stop.store(true);
    go.store(true);
    for (std::thread& t : threads) t.join();  // each returns once its connect/warm-up ends
    return state.SkipWithError("tenants not ready within 60 s");
  }
  double elapsed_s = 0;
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    go.store(true, std::memory_order_release);  // release: nothing to publish; starts them
    absl::SleepFor(absl::Seconds(g_seconds));
    stop.store(true, std::memory_order_relaxed);
    // The phase ends here: the last round trips and the tenants' teardown are not counted.
    elapsed_s = static_cast<double>(Ticks() - t0) / TicksPerNs() / 1e9;
    for (std::thread& t : threads) t.join();
  }
  std::vector<std::uint64_t> all;
  std::uint64_t ops = 0, fewest = ~std::uint64_t{0}, most = 0;
  for (const TenantResult& r : results) {
    if (!r.error.empty()) return state.SkipWithError(r.error.c_str());
    all.insert(all.end(), r.rtt_ticks.begin(), r.rtt_ticks.end());
    ops += r.ops;
    fewest = std::min<std::uint64_t>(fewest, r.rtt_ticks.size());
    most = std::max<std::uint64_t>(most, r.rtt_ticks.size());
  }
  if (all.empty()) return state.SkipWithError("no round trip completed");
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return static_cast<double>(all[std::min(all.size() - 1, static_cast<std::size_t>(
                                                                 p * all.size()))]) /
           TicksPerNs();
  };
  state.counters["tenant_ops_per_s"] = static_cast<double>(ops) / elapsed_s;
  state.counters["p50_ns"] = pct(0.50);
  state.counters["p99_ns"] = pct(0.99);
  state.counters["p999_ns"] = pct(0.999);
  state.counters["samples"] = static_cast<double>(all.size());
  state.counters["fairness"] = most == 0 ? 0 : static_cast<double>(fewest) / most;
  state.counters["clients"] = clients;
  state.counters["pollers"] = pollers;
  state.counters["queues"] = queues;
  state.SetLabel("batch 8 NOP round trips, busy-poll queues, clients asleep on eventfd");
}

}  // namespace
}  // namespace pinring::bench

int main(int argc, char** argv) {
  using namespace pinring::bench;
  return RunMain(argc, argv, [](const Options& o) {
    if (o.quick) g_seconds = 0.2;
    auto* b = benchmark::RegisterBenchmark("BM_Tenants", BM_Tenants)
                  ->ArgNames({"clients", "pollers", "queues"})
                  ->Iterations(1)
                  ->UseRealTime()
                  ->Unit(benchmark::kMillisecond);
    for (int p : {1, 2}) {
      for (int n : {1, 2, 4, 8, 16}) b->Args({n, p, 1});
      for (int q : {2, 4, 8}) b->Args({1, p, q});
    }
  });
}
