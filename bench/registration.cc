// pinring-bench-reg: what pinning memory for a device costs, against the registered size.
//
//   BM_IbvRegMr/<size>/<pages>          ibv_reg_mr + ibv_dereg_mr on the first RDMA device
//   BM_IoUringRegisterBuffers/<size>/<pages>
//                                       io_uring_register_buffers + io_uring_unregister_buffers:
//                                       the host-native equivalent (also FOLL_LONGTERM pins)
//
// <pages> is 4k (ordinary pages) or 2m (2 MiB pages: hugetlbfs when the pool has pages, else
// transparent huge pages through MADV_HUGEPAGE; the label says which one backed the run, and "4k
// fallback" if neither did). The memory is touched before timing, so the rows measure pinning and
// mapping for the device, not page faults. The largest size is --pinring_max_bytes (1 GiB by
// default; the driver caps it in emulated guests and in quick mode).
#include <infiniband/verbs.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "bench_util.h"

namespace pinring::bench {
namespace {

constexpr std::uint64_t kHugePage = 2ull << 20;

enum class Pages { k4k, k2m };

// Touched memory, grown on demand and kept across benchmark runs: the sweep goes small to large, so
// at most one allocation per size step is faulted in, outside timing.
struct Arena {
  void* base = nullptr;
  std::uint64_t size = 0;
  std::string backing;  // "4k", "hugetlb", "thp", "4k fallback"
};
Arena g_arenas[2];

std::uint64_t AnonHugeKb() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string key;
  std::uint64_t kb = 0;
  while (in >> key) {
    if (key == "AnonHugePages:") {
      in >> kb;
      return kb;
    }
  }
  return 0;
}

void Release(Arena& a) {
  if (a.base != nullptr) munmap(a.base, a.size);
  a = Arena{};
}

// Returns touched memory of at least `size` bytes backed by `pages`, or nullptr.
Arena* GetArena(Pages pages, std::uint64_t size) {
  Arena& a = g_arenas[pages == Pages::k2m];
  if (a.base != nullptr && a.size >= size) return &a;
  Release(a);
  if (pages == Pages::k4k) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    madvise(p, size, MADV_NOHUGEPAGE);  // ordinary pages even where THP is "always"
    std::memset(p, 1, size);
    a = {p, size, "4k"};
    return &a;
  }
  // hugetlbfs first: needs a reserved pool (vm.nr_hugepages), which the driver does not change.
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
  if (p != MAP_FAILED) {
    a = {p, size, "hugetlb"};
    return &a;
  }
  // THP: a 2 MiB-aligned range with MADV_HUGEPAGE, then check the kernel really gave huge pages.
  const std::uint64_t before = AnonHugeKb();
  // mmap does not promise 2 MiB alignment: allocate one huge page more and trim both ends.
  void* raw =
      mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const std::uintptr_t r = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (r + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > r) munmap(raw, aligned - r);
  const std::uintptr_t end = r + size + kHugePage;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  p = reinterpret_cast<void*>(aligned);
  madvise(p, size, MADV_HUGEPAGE);
  std::memset(p, 1, size);
  const std::uint64_t gained_kb = AnonHugeKb() - before;
  a = {p, size, gained_kb * 1024 >= size / 2 ? "thp" : "4k fallback"};
  return &a;
}

struct Verbs {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  std::string device;
};

// The device is opened once per process and kept: opening it is not what these rows measure.
Verbs* OpenVerbs() {
  static Verbs v = [] {
    Verbs out;
    int n = 0;
    ibv_device** list = ibv_get_device_list(&n);
    if (list != nullptr && n > 0) {
      out.ctx = ibv_open_device(list[0]);
      out.device = ibv_get_device_name(list[0]);
      if (out.ctx != nullptr) out.pd = ibv_alloc_pd(out.ctx);
    }
    if (list != nullptr) ibv_free_device_list(list);
    return out;
  }();
  return v.pd != nullptr ? &v : nullptr;
}

void BM_IbvRegMr(benchmark::State& state, std::uint64_t size, Pages pages) {
  Verbs* v = OpenVerbs();
  if (v == nullptr) {
    return state.SkipWithError("no RDMA device (ibv_get_device_list() is empty or open failed)");
  }
  Arena* a = GetArena(pages, size);
  if (a == nullptr) return state.SkipWithError("could not allocate the buffer");
  const int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  LatencyRecorder lat(state);
  bool ok = true;
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    ibv_mr* mr = ibv_reg_mr(v->pd, a->base, size, access);
    ok &= mr != nullptr;
    if (mr != nullptr) ok &= ibv_dereg_mr(mr) == 0;
    lat.Add(Ticks() - t0);
    if (!ok) break;
  }
  if (!ok)
    return state.SkipWithError(
        ("ibv_reg_mr/ibv_dereg_mr: " + std::string(strerror(errno))).c_str());
  lat.Report(state);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
  state.SetLabel(v->device + " " + a->backing);
}

void BM_IoUringRegisterBuffers(benchmark::State& state, std::uint64_t size, Pages pages) {
  Arena* a = GetArena(pages, size);
  if (a == nullptr) return state.SkipWithError("could not allocate the buffer");
  io_uring ring;
  if (int rc = io_uring_queue_init(8, &ring, 0); rc < 0) {
    return state.SkipWithError(("io_uring_queue_init: " + std::string(strerror(-rc))).c_str());
  }
  iovec iov{a->base, size};
  LatencyRecorder lat(state);
  int err = 0;
  for (auto _ : state) {
    const std::uint64_t t0 = Ticks();
    if (int rc = io_uring_register_buffers(&ring, &iov, 1); rc < 0) err = -rc;
    if (err == 0) {
      if (int rc = io_uring_unregister_buffers(&ring); rc < 0) err = -rc;
    }
    lat.Add(Ticks() - t0);
    if (err != 0) break;
  }
  io_uring_queue_exit(&ring);
  if (err != 0) {
    return state.SkipWithError(
        ("io_uring_register_buffers: " + std::string(strerror(err))).c_str());
  }
  lat.Report(state);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
  state.SetLabel(a->backing);
}

}  // namespace
}  // namespace pinring::bench

int main(int argc, char** argv) {
  using namespace pinring::bench;
  return RunMain(argc, argv, [](const Options& o) {
    // Every 16x from 4 KiB, plus the 1 GiB the targets name; capped at max_bytes.
    const std::uint64_t sizes[] = {4ull << 10,  64ull << 10,  1ull << 20, 2ull << 20,
                                   16ull << 20, 256ull << 20, 1ull << 30};
    for (const char* which : {"BM_IbvRegMr", "BM_IoUringRegisterBuffers"}) {
      const bool verbs = std::strcmp(which, "BM_IbvRegMr") == 0;
      for (Pages pages : {Pages::k4k, Pages::k2m}) {
        for (std::uint64_t size : sizes) {
          if (size > o.max_bytes) continue;
          if (pages == Pages::k2m && size < kHugePage) continue;
          const std::string name =
              std::string(which) + "/" + SizeName(size) + "/" + (pages == Pages::k4k ? "4k" : "2m");
          auto* b = verbs ? benchmark::RegisterBenchmark(name.c_str(), BM_IbvRegMr, size, pages)
                          : benchmark::RegisterBenchmark(name.c_str(), BM_IoUringRegisterBuffers,
                                                         size, pages);
          b->UseRealTime()->Unit(benchmark::kMicrosecond);
        }
      }
    }
  });
}
