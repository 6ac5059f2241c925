#!/usr/bin/env python3
"""Renders the results JSON of bench/run-benchmarks into DOCS/benchmarks.md and
DOCS/img/bench-*.png (gnuplot). Every number, ratio, verdict and "why" comes from the JSON or from
the rules below; nothing in the output is edited by hand.

usage: render-benchmarks.py RESULTS.json --docs DIR
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

# Why a row misses its target, and what would fix it: keyed by row id, printed only beside a row
# that misses (the verdict itself is computed). Each names the mechanism; the profile beside it
# (from the same run) is the evidence.
WHY = {
    "BM_ShmNopRoundTrip/busy-poll":
        "ringd's poller does more per descriptor than the bare echo loop: it copies the descriptor "
        "out (untrusted), validates it, dispatches to the backend and checks the queue's state, "
        "and with two cores both spinners share the machine with everything else (other builds, "
        "ringd's event loop). Fix: a poller fast path for NOP/small ops, and on a bigger machine "
        "isolate the poller core (isolcpus/nohz_full).",
    "BM_ShmNopRoundTrip/eventfd":
        "both sides sleep, as in the bare ping-pong, but each hop does more than one blocking "
        "read and one write. The client publishes the tail, fences, writes the doorbell, then "
        "sleeps in a ppoll over the completion eventfd and the control socket (so that a dead "
        "ringd wakes it; ppoll also arms a timeout timer) and drains the eventfd with a read: two "
        "system calls where the bare side has one (the per-wait Health() polls of the socket, "
        "two more, were removed after the profile of an earlier run). ringd waits in io_uring: "
        "the doorbell read completes through io_uring task-work on ringd's event-loop thread, "
        "which serves the ring, checks the client-owned completion eventfd's O_NONBLOCK (an "
        "fcntl: a hostile client may clear it, and a blocking write would stall the loop) and "
        "writes it. The profile below (whole machine) puts ringd's thread in the kernel's "
        "pvm_irq_enable for a large share of the samples, against a few percent for the "
        "client: on this VM re-enabling interrupts is a paravirtual hypercall, and the io_uring "
        "task-work and eventfd wake paths do it on every spin_unlock_irqrestore. Measured this "
        "session, same run each: serving the queue from a poller thread that sleeps in "
        "epoll_wait instead of the io_uring loop (adaptive mode with a 1 µs poll window and a "
        "blocking client) was 3-4% faster; the client sleeping in epoll_pwait2 on a persistent "
        "set instead of ppoll was within noise. What is left is the count of kernel entries per "
        "hop (client: doorbell write, wait, drain read; ringd: wake, fcntl, write) against the "
        "bare ping-pong's one write and one read. Fix: sleep on a futex in the shared ring "
        "header instead of eventfds (one FUTEX_WAKE from ringd, one FUTEX_WAIT with a timeout "
        "slice in the client, which checks the control socket only when a slice expires).",
    "BM_ShmNopBatch/batch:32":
        "io_uring completes its 32 NOPs inside one system call on one core: no cache line leaves "
        "the core. Through pinring every NOP moves a 64-byte descriptor line from the client's "
        "core to ringd's and half a completion line back, and submit-and-wait adds the round "
        "trip of the index lines per batch with nothing overlapping it. The line transfers' "
        "cost depends on where the hypervisor places the two vCPUs, which changes between "
        "machines (compare the SPSC ping-pong row above with the previous run's). ringd's own "
        "per-descriptor work is small: NOPs take a validation fast path (one branch, no backend "
        "call, the completion stored whole), descriptor lines are prefetched per batch and "
        "counters added once per batch; the client's profile below is mostly spinning for "
        "completions. Fix: fewer bytes across cores per op: completion coalescing (one "
        "completion for a run of flagged descriptors, as unsignaled work requests do), a compact "
        "32-byte descriptor for small ops, and on a real machine ringd's poller on the SMT "
        "sibling or the same L3 as the client.",
    "BM_ShmNopStream":
        "the streamed row is bounded by its floor, the same bytes through a bare ring between "
        "two processes (the table above): that floor itself was only 1.3-2.1x io_uring's "
        "batch-32 rate on the build machine (same-run pairs, Intel Xeon, 2 vCPUs: this run's "
        "tables and the ad-hoc runs made while writing the NOP fast path), so 3x io_uring is out of reach of any design that "
        "moves a 64-byte descriptor and a 32-byte completion between cores per NOP. Against "
        "the floor the target (0.7x) is met. Profile of ringd (perf record -a -e cpu-clock "
        "during the row, at the commits before and after 4d11699): before, ringd's poller was busy 100% of the time with "
        "45% of it in ValidateDescriptor, ValidateShmDescriptor's copies of the 96-byte "
        "ValidatedOp and the backend call that NOPs do not need, and the row ran at 0.38x the "
        "floor; after the NOP fast path, 70-80% of ringd's samples sit on the loads of the "
        "descriptor lines and the first store into each completion line, i.e. on the "
        "cross-core transfers the floor pays too. Fix, to go past the floor: completion "
        "coalescing (an opt-in flag: one completion for a run of flagged descriptors), so "
        "that a batch of 32 moves 32 descriptor lines and one completion instead of 16 "
        "completion lines.",
    "write_lat":
        "ib_write_lat's figure is half a ping-pong: each side detects the peer's WRITE by "
        "polling the last byte of its own buffer, so neither a completion nor the RC "
        "acknowledgement is on its path. ringd's row is submit to completion: the shm hand-off "
        "(under a microsecond in the guest), the WRITE posted on ringd's loopback QP (a system "
        "call into rxe) and its completion, which on RC waits for the responder's ACK to come "
        "back and rxe's completer to run. The profile below (whole guest) shows the CPUs mostly "
        "in the two spin loops and idle, not in rxe's code: the time is hand-offs between "
        "kernel and user contexts under emulation, not work. The gap shrinks as the data copy "
        "grows (1 MiB: at or below 1×). The fair anchor in the table, a bare verbs loop that "
        "posts the same WRITE and polls its CQ, puts the ring itself out of the question: "
        "ringd's row is at or below that loop at 8-512 B in this run (ringd's poller posts and "
        "polls on "
        "the other vCPU, the bare loop posts and polls on the measuring one; that difference "
        "is not profiled yet), so what is "
        "left against ib_write_lat is completion by work completion instead of by memory "
        "polling. Fix: not in ringd for the ACK on rxe (on a hardware NIC the ACK turnaround "
        "is about a microsecond); inside ringd, post from a per-poller QP without the backend "
        "mutex.",
    "write_rate":
        "ringd now posts a ring batch's COPYs as one list of up to 64 WRITEs and reaps them "
        "together (0.21× before). What remains: one loopback QP behind a mutex and one poller, "
        "and each batch waits for all of its WRITEs before the next batch is posted, where "
        "ib_write_bw keeps its send queue full continuously and signals one WRITE in 100. Fix: "
        "keep posting while reaping (pipeline across poller passes), signal only the last WRITE "
        "of a batch, per-poller QPs.",
    "BM_VictimNop":
        "ringd interleaves tenants at the granularity of one slice: a pass (QueueServer::ServeOnce) "
        "does at most --serve_budget_bytes of work for a queue (default cpu 4 KiB, verbs 1 MiB; a "
        "CHECKSUM byte counts 32), a larger descriptor advances one slice per pass, and the "
        "serving thread goes round every queue between slices. A victim's NOP therefore waits at "
        "most one aggressor slice. On the cpu backend that is under a microsecond of memmove or "
        "FNV-1a; a row that still misses there is within the run's scheduling noise, and a "
        "smaller --serve_budget_bytes trades aggressor throughput for it. On the verbs backend a "
        "slice is one synchronous device operation on ringd's single loopback QP, and under "
        "emulated rxe a 1 MiB WRITE or READ takes milliseconds, so the victim waits that long; "
        "the profile below shows the time in the rxe requester/responder path. Fix: progress "
        "device slices asynchronously (post a slice, serve the other queues while it is in "
        "flight, complete the descriptor from its work completion), which belongs to the "
        "architecture step (per-connection asynchronous progress), or a smaller "
        "--serve_budget_bytes for the verbs backend at the cost of large-op throughput.",
    "BM_RdmaTransportRoundTrip":
        "two device operations (the inline doorbell SEND, the completion WRITE_WITH_IMM) are the "
        "floor, 2× ib_send_lat; the rest is ringd's hop between them. The profile below covers "
        "the whole guest for the whole benchmark process (ringd's start-up and the connection "
        "set-up included, hence the idle time in native_safe_halt): the client spins in "
        "WaitForProgress on its CQ, and no user-space code of ringd or of the client reaches 1%. "
        "What a round trip pays beyond two perftest SENDs is the third spinning party: ringd's "
        "rdma thread, which must see the doorbell's receive completion and post the "
        "WRITE_WITH_IMM (on rxe each post is a system call, and rxe's packet processing runs in "
        "softirqs on the same two vCPUs the client and ringd spin on), where ib_send_lat's two "
        "processes answer each other directly. Measured before this fix: four operations, 12× "
        "(the pulled row still shows three, the default --rdma_poll_us row the thread wake-up "
        "the polling removes). The next fix: measure with ringd's poller on a core of its own (a "
        "machine with more than two cores, or a real NIC, where a post is a doorbell write and "
        "not a system call), to see how much of the hop is the shared machine.",
    "BM_RdmaVictimNop":
        "ringd's rdma listener now progresses every connection on its own (a coroutine per "
        "connection, service/rdma/task.h): the aggressor's COPY and CHECKSUM move through a "
        "64 KiB bounce buffer one RDMA READ or WRITE at a time, and between any two of them the "
        "listener polls and serves the victim. The victim is no longer starved (before this "
        "change its round trips hit the phase timeout). What is left is the device: under "
        "emulated rxe one 64 KiB chunk operation of the aggressor takes about 2 ms (the mean "
        "time of one 8 MiB aggressor descriptor above, divided by its 128 chunks of READ plus "
        "WRITE), and each of the victim's device operations (the descriptor READ, the completion "
        "WRITE and its SEND) queues behind the aggressor chunk in flight on the same rxe device, "
        "so a victim round trip takes about three chunk times. Fix: keep a large descriptor's "
        "chunks small while another connection has work (an adaptive chunk size, 8 KiB under "
        "contention), or order the device's work so that a small op is posted ahead of the next "
        "bulk chunk; both trade aggressor throughput for the victim's latency. On a hardware NIC "
        "a 64 KiB transfer takes microseconds and the same scheme meets the target.",
    "BM_RdmaStalledPeerNop":
        "the victim shares ringd's rdma thread with the stalled op's connection; with "
        "per-connection progress the stalled op only suspends its own task, so a miss here is "
        "emulation noise on the victim's own round trips (compare the alone and stalled p50), "
        "not the stall.",
    "fork":
        "if the smaller sizes of the same mode stay at or below the target, a lone miss at 1 GiB "
        "is as likely noise on a loaded machine (the evaluator's median of a few forks) as a "
        "trend: re-run before acting. A real trend would come from fork() still copying the "
        "page tables and VMAs around the registration (MADV_DONTFORK skips the range's pages "
        "but the VMA split remains) and from the rest of the process's memory. Fix for a real "
        "trend: back large registrations with 2 MiB pages and keep them in few VMAs.",
}


def fmt_ns(v):
    if v is None:
        return "–"
    if v >= 1e9:
        return f"{v / 1e9:.2f} s"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.2f} µs"
    return f"{v:.0f} ns"


def fmt_rate(v, unit):
    if v is None:
        return "–"
    for div, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.2f} {p}{unit}"
    return f"{v:.1f} {unit}"


def fmt_bytes(n):
    for div, u in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div and n % div == 0:
            return f"{n // div} {u}"
    return f"{n} B"


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def verdict(r):
    if r.get("target") is None:
        return ""
    t = f"{r['op']} {r['target']}×"
    if r.get("met") is None:
        return f"target {t}: not measured"
    return f"target {t}: **{'met' if r['met'] else 'MISSED'}**"


def g(v, k):
    return None if not v else v.get(k)


def why_key(r):
    rid = r.get("id", "")
    if rid in WHY:
        return rid
    return rid.split("/")[0] if "/" in rid and rid.split("/")[0] in WHY else None


def md_why(r, out, seen):
    """The why of a missed row; rows sharing one analysis (one per size) get it once. A section
    with host and guest rows (the victim rows) gives each side its own, with its own profile."""
    if r.get("met") is not False:
        return
    k = why_key(r)
    sk = (k, r.get("where"))
    if sk in seen:
        out.append(f"\n`{r.get('id')}` misses too (ratio {fmt_ratio(r['ratio'])}): same cause as "
                   f"`{seen[sk]}` above.\n")
        return
    seen[sk] = r.get("id")
    out.append(f"\n**Why `{r.get('id')}` misses its target — likely cause and fix** (ratio {fmt_ratio(r['ratio'])}, "
               f"target {r['op']} {r['target']}×): {WHY.get(k, 'no analysis recorded yet.')}\n")
    md_profile(r.get("profile"), out)


def md_profile(p, out):
    """The profile recorded beside a missed row, or why there is none."""
    if p:
        out.append(f"\nProfile ({p['tool']}{'; ' + p['note'] if p.get('note') else ''}), "
                   "top entries by self cost:\n\n```")
        out.extend(p["top"] or ["(empty)"])
        out.append("```\n")
    else:
        out.append("\nNo profile was taken for this row in this run (quick mode or "
                   "--no-profile).\n")


# ------------------------------------------------------------------------------------------------
# gnuplot
# ------------------------------------------------------------------------------------------------
def gnuplot(script, img_dir, name, datas):
    """Writes the data files and runs gnuplot; returns the image path (relative) or None."""
    if shutil.which("gnuplot") is None:
        return None
    tmp = os.path.join(img_dir, f".{name}")
    os.makedirs(tmp, exist_ok=True)
    for fname, rows in datas.items():
        with open(os.path.join(tmp, fname), "w") as f:
            for row in rows:
                f.write(" ".join(str(x) for x in row) + "\n")
    png = os.path.join(img_dir, f"{name}.png")
    head = (f"set terminal pngcairo size 900,500 noenhanced font 'sans,10'\n"
            f"set output '{png}'\nset key outside right top\nset grid\n")
    p = subprocess.run(["gnuplot"], input=head + script, text=True, cwd=tmp,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    shutil.rmtree(tmp, ignore_errors=True)
    if p.returncode != 0 or not os.path.exists(png):
        print(f"render: gnuplot failed for {name}: {p.stdout}", file=sys.stderr)
        return None
    return f"img/{name}.png"


def tenants_table(sec, out, img):
    """BM_Tenants (bench/tenants.cc): throughput and round-trip percentiles against the number
    of tenants and of queues, each beside the single-tenant row with the same pollers."""
    rows = sec["rows"]
    if not rows:
        out.append(f"Not run: {sec.get('error') or 'no rows'}.\n")
        return
    out.append("N clients, each its own connection (a tenant) with Q busy-poll queues, run "
               "round trips of 8 NOPs (commit 8, sleep on the completion eventfd until all 8 "
               "complete) for a fixed time against one ringd with P pollers (cpu backend). "
               "Throughput is the sum over clients; p50/p99/p99.9 are of one round trip over "
               "every client's samples; fairness is the slowest client's round trips over the "
               "fastest's (1 = equal shares). The anchor of each row is the 1-client, 1-queue "
               "row with the same pollers, same run.\n")
    out.append("| pollers | clients | queues per client | ops/s | p50 | p99 | p99.9 | fairness | "
               "ops/s vs anchor | p99 vs anchor |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["pollers"], r["queues"] != 1, r["clients"],
                                         r["queues"])):
        v = r.get("value")
        if not v:
            out.append(f"| {r['pollers']} | {r['clients']} | {r['queues']} | {r['missing']} "
                       "| | | | | | |")
            continue
        out.append(f"| {r['pollers']} | {r['clients']} | {r['queues']} | "
                   f"{fmt_rate(v['ops'], 'op/s')} | {fmt_ns(v['p50'])} | {fmt_ns(v['p99'])} | "
                   f"{fmt_ns(v['p999'])} | {v['fairness']:.2f} | {fmt_ratio(r.get('ratio_ops'))} | "
                   f"{fmt_ratio(r.get('ratio_p99'))} |")
    out.append("\nWhat two vCPUs cannot show: every poller spins, so with 2 pollers both cores "
               "are taken by ringd and the clients run only when the scheduler preempts a "
               "poller (the 2-poller rows measure that contention, not a second poller's "
               "capacity); with 1 poller the clients share the other core, so their wake-ups "
               "queue behind each other and p99 grows with their number whatever ringd does. "
               "A machine with a core per poller and per client would show ringd's own "
               "scaling; here the rows bound it from below.\n")
    data = {}
    for p in sorted({r["pollers"] for r in rows}):
        pts = sorted((r["clients"], r["value"]["ops"], r["value"]["p99"] / 1e3) for r in rows
                     if r["pollers"] == p and r["queues"] == 1 and r.get("value"))
        if pts:
            data[f"p{p}"] = pts
    if not data:
        return
    plots_ops = ", ".join(f"'{k}' using 1:2 with linespoints title '{k[1:]} poller(s): ops/s'"
                          for k in data)
    plots_p99 = ", ".join(f"'{k}' using 1:3 with linespoints title '{k[1:]} poller(s): p99 µs'"
                          for k in data)
    png = gnuplot("set multiplot layout 1,2 title 'Scaling with tenants (1 queue each)'\n"
                  "set xlabel 'clients'\nset logscale x 2\nset xrange [0.8:20]\n"
                  "set xtics (1,2,4,8,16)\nset key inside bottom left\nset yrange [0:*]\n"
                  f"set ylabel 'ops/s'\nplot {plots_ops}\n"
                  "set key inside top left\nset yrange [*:*]\n"
                  f"set ylabel 'p99 µs (log)'\nset logscale y\nplot {plots_p99}\n"
                  "unset multiplot\n", img, "bench-tenants", data)
    if png:
        out.append(f"![Scaling with tenants]({png})\n")


def plot_nop(sec, img):
    rows = [r for r in sec["rows"] if r.get("value")]
    if not rows:
        return None
    data = [(i, f'"{r["name"]}"', r["value"]["p50"] / 1e3, r["value"]["p99"] / 1e3)
            for i, r in enumerate(rows)]
    return gnuplot("set title 'NOP round trip (p50 and p99)'\nset ylabel 'µs (log)'\n"
                   "set logscale y\nset style data histograms\nset style fill solid 0.8\n"
                   "set xtics rotate by -30\nset boxwidth 0.8\n"
                   "plot 'd' using 3:xtic(2) title 'p50', '' using 4 title 'p99'\n",
                   img, "bench-nop-roundtrip", {"d": data})


def plot_batch(sec, img):
    sync = [r for r in sec["rows"] if r.get("shape") not in ("streamed", "floor")]
    p = [(r["batch"], r["value"]["ops_p50"]) for r in sync if g(r["value"], "ops_p50")]
    u = [(r["batch"], r["anchor_value"]["ops_p50"]) for r in sync
         if g(r.get("anchor_value"), "ops_p50")]
    st = [(r["batch"], r["value"]["ops"]) for r in sec["rows"]
          if r.get("shape") == "streamed" and g(r["value"], "ops")]
    if not p and not u and not st:
        return None
    plots = []
    if p:
        plots.append("'p' using 1:2 with linespoints title 'pinring shm, submit-and-wait (p50)'")
    if st:
        plots.append("'s' using 1:2 with linespoints title 'pinring shm, streamed (wall clock)'")
    if u:
        plots.append("'u' using 1:2 with linespoints title 'io_uring NOP (p50)'")
    return gnuplot("set title 'Batched NOP throughput'\nset xlabel 'batch'\n"
                   "set ylabel 'ops/s'\nset logscale xy\nset xtics (1,8,32,128)\n"
                   "plot " + ", ".join(plots) + "\n", img,
                   "bench-batch-throughput", {"p": p, "u": u, "s": st})


def plot_size(sec, img, name, title, ylabel, key):
    p = [(r["size"], g(r["value"], key)) for r in sec["rows"] if g(r["value"], key)]
    a = [(r["size"], g(r.get("anchor_value"), key)) for r in sec["rows"]
         if g(r.get("anchor_value"), key)]
    if not p and not a:
        return None
    scale = 1e3 if key == "p50" else 1
    p = [(s, v / scale) for s, v in p]
    a = [(s, v / scale) for s, v in a]
    plots = []
    if p:
        plots.append("'p' using 1:2 with linespoints title 'ringd-mediated'")
    if a:
        plots.append("'a' using 1:2 with linespoints title 'perftest'")
    return gnuplot(f"set title '{title}'\nset xlabel 'message size (bytes)'\n"
                   f"set ylabel '{ylabel}'\nset logscale xy\nplot " + ", ".join(plots) + "\n",
                   img, name, {"p": p, "a": a})


def plot_reg(sec, img):
    datas, plots = {}, []
    for i, s in enumerate(sec["series"]):
        pts = [(p["bytes"], p["value"]["p50"] / 1e3) for p in s["points"] if p["value"]]
        if not pts:
            continue
        datas[f"s{i}"] = pts
        plots.append(f"'s{i}' using 1:2 with linespoints title '{s['where']} {s['call']} {s['pages']}'")
    if not plots:
        return None
    return gnuplot("set title 'Register + deregister (p50)'\nset xlabel 'bytes'\n"
                   "set ylabel 'µs'\nset logscale xy\nset format x '%.0s%cB'\nplot "
                   + ", ".join(plots) + "\n", img, "bench-registration", datas)


def plot_fork(sec, img):
    modes = {}
    for r in sec["rows"]:
        if r["fork_us"]:
            modes.setdefault(r["mode"], []).append((r["bytes"], r["fork_us"]))
    if not modes:
        return None
    datas = {f"m{i}": sorted(v) for i, v in enumerate(modes.values())}
    plots = [f"'m{i}' using 1:2 with linespoints title '{m}'" for i, m in enumerate(modes)]
    return gnuplot("set title 'fork() latency (median) against registered size'\n"
                   "set xlabel 'registered bytes'\nset ylabel 'µs'\nset logscale xy\n"
                   "set format x '%.0s%cB'\nplot " + ", ".join(plots) + "\n", img,
                   "bench-fork", datas)


# ------------------------------------------------------------------------------------------------
def machine_line(m):
    load = ""
    if m.get("loadavg_start"):
        load = f"; 1-min load average {m['loadavg_start'][0]:.1f} at the start"
        if m.get("loadavg_end"):
            load += f", {m['loadavg_end'][0]:.1f} at the end"
        load += " (other work on the machine)"
    return f"{m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']}, {m['kind']}{load}"


def latency_table(sec, out):
    out.append("| row | p50 | p99 | p99.9 | mean | ops/s | anchor (same run) | anchor p50 | "
               "ratio (p50) | target |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in sec["rows"]:
        v, a = r.get("value"), r.get("anchor_value")
        if v is None and r.get("kind") == "baseline":
            out.append(f"| {r['name']} (baseline) | not measured: {r['missing']} ||||||||")
            continue
        name = r["name"] + (" (baseline)" if r.get("kind") == "baseline" else "")
        if v is None:
            cells = f"{r['missing']} | | | | "
        else:
            cells = (f"{fmt_ns(v['p50'])} | {fmt_ns(v['p99'])} | {fmt_ns(v['p999'])} | "
                     f"{fmt_ns(v['mean'])} | {fmt_rate(v.get('ops'), 'op/s')}")
        if r.get("kind") == "baseline":
            out.append(f"| {name} | {cells} | – | – | – | |")
            continue
        anchor = r.get("anchor") or "–"
        out.append(f"| {name} | {cells} | {anchor} | "
                   f"{fmt_ns(g(a, 'p50')) if a else r.get('anchor_missing') or '–'} | "
                   f"{fmt_ratio(r.get('ratio'))} | {verdict(r)} |")


def victim_table(sec, out):
    """The tenant-isolation rows: the victim alone and with the aggressor, host and guest."""
    params = sec.get("params") or {}
    shapes = {p["aggressor_bytes"] for p in params.values()}
    size = " or ".join(fmt_bytes(b) for b in sorted(shapes)) if shapes else "64 MiB"
    out.append("Two clients of one ringd (its default single poller; host `--backend=cpu`, guest "
               "`--backend=verbs`; the rdma transport rows: ringd's rdma listener, one thread, "
               "each client an `RdmaQueue` with its own rdma_cm connection, rings and regions, "
               "the victim spinning on its CQ or sleeping on its completion channel, the "
               "aggressor always sleeping). The **victim** submits one NOP and waits for its "
               "completion (busy-poll: it spins; eventfd: it blocks), first alone, then while an "
               "**aggressor** — a second client with its own connection, queue and two "
               f"{size} regions, its queue in the victim's doorbell mode — keeps 2 commits of "
               f"2 COPY + 2 CHECKSUM of {size} each in flight (staggered, so that one waits in "
               "its ring while ringd works on the other), reaping and resubmitting "
               "continuously. Both phases use the same victim queue in the same run. The ratio is "
               "the victim's p99 with the aggressor over its p99 alone: one tenant's large "
               "operations should not stall another tenant's small ones (target ≤ 2×).\n")
    for part, title in (("host", "Host"), ("guest", "Guest"),
                        ("rdma", "Guest, rdma transport")):
        p = params.get(part)
        if p:
            pace = ("back to back" if not p.get("interval_us") else
                    f"one started every {fmt_ns(p['interval_us'] * 1e3)} (at once when the "
                    "previous one took longer)")
            out.append(f"{title}: each phase is at most {p['samples']} round trips, "
                       f"{pace}, or {p['seconds']:g} s, whichever ends first (a starved victim "
                       "may take seconds per round trip; the samples columns say how many were "
                       "taken)" + (f"; aggressor regions of {fmt_bytes(p['aggressor_bytes'])}"
                                   if len(shapes) > 1 else "") + ".\n")
    rdma = [r for r in sec["rows"] if r.get("part") == "rdma" and r.get("value")]
    if rdma:
        out.append("rdma transport: a victim round trip is waited for at most "
                   f"{rdma[0]['value'].get('sample_timeout_s', 120):g} s (the phase cap) in these "
                   "rows. \"One aggressor descriptor\" below is the mean time of one descriptor of "
                   "the aggressor's first commit, run alone before the flood: ringd's rdma thread "
                   "serves no other connection for that long.\n")
        for r in rdma:
            w = r["value"]
            line = (f"`{r['id']}`: one aggressor descriptor took "
                    f"{fmt_ns(w.get('aggressor_desc_ns'))}.")
            c, after = w.get("censored_nop_ns"), w.get("censored_nop_after_aggressor_ns")
            if w.get("timed_out") and c is not None and after is not None:
                when = (f"{fmt_ns(after)} after" if after >= 0 else f"{fmt_ns(-after)} before")
                line += (f" The round trip that timed out completed {fmt_ns(c)} after its NOP was "
                         "submitted (the aggressor stopped submitting when the phase ended and "
                         f"drained what it had in flight), {when} the aggressor reaped its last "
                         "completion (both clients stamp the time when their thread sees the "
                         "completion, so a few ms either way means \"next\").")
            if w.get("aggressor_doorbells_rerung"):
                line += (" The aggressor rang its doorbell again "
                         f"{w['aggressor_doorbells_rerung']:.0f} time(s) with the tail it had "
                         "already announced, after a long wait with descriptors in flight and no "
                         "completion (such a doorbell brings nothing new unless ringd's rdma "
                         "thread had missed the first one; without it, the missed descriptors "
                         "would never complete).")
            out.append(line + "\n")
    remeasured_note(sec["rows"], out)
    out.append("| where | backend | doorbell | alone p50 | alone p99 | samples | with aggressor "
               "p50 | with aggressor p99 | samples | aggressor work meanwhile (COPY + CHECKSUM "
               "bytes/s) | ratio (p99 with / p99 alone) | target |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sec["rows"]:
        v = r.get("value")
        head = f"| {r['where']} | {r['backend']} | {r.get('doorbell') or r['mode']} | "
        if v is None:
            out.append(head + f"{r['missing']} | | | | | | | {fmt_ratio(None)} | {verdict(r)} |")
            continue
        a, l = v["alone"], v["loaded"]
        note = (f" (a round trip hit the {v.get('sample_timeout_s', 120):g} s timeout: phase cut "
                "short)" if v.get("timed_out") else "")
        out.append(head + f"{fmt_ns(a['p50'])} | {fmt_ns(a['p99'])} | {a['samples']:.0f} | "
                   f"{fmt_ns(l['p50'])} | {fmt_ns(l['p99'])}{note} | {l['samples']:.0f} | "
                   f"{fmt_rate(v.get('aggressor_work_bytes_per_s'), 'B/s')} | "
                   f"{fmt_ratio(r.get('ratio'))} | {verdict(r)} |")
    out.append("\nThe aggressor's throughput column shows that it kept ringd busy while the victim "
               "was measured; the rows come from `BM_VictimNop/busy-poll` and "
               "`BM_VictimNop/eventfd` (bench/victim.h) in pinring-bench-shm (host) and "
               "pinring-bench-verbs (guest), and from `BM_RdmaVictimNop/spin` and "
               "`BM_RdmaVictimNop/block` (bench/rdma_transport.cc) in pinring-bench-rdma (guest, "
               "rdma transport).\n")


def remeasured_note(rows, out):
    """Rows measured again after the rest of the report (their own run, same kind of guest boot):
    say when, at which commit, and on which kernel, so no figure is read as from the main run."""
    seen = set()
    for r in rows:
        m = r.get("remeasured")
        if not m or m.get("commit") in seen:
            continue
        seen.add(m.get("commit"))
        out.append(f"Measured again in a run of their own (the rest of this report is from the run "
                   f"above): {', '.join(f'`{x}`' for x in sorted({q['id'] for q in rows if q.get('remeasured')}))} "
                   f"at commit {m.get('commit', '?')[:7]}, {m.get('date', '?')}, guest kernel "
                   f"{m.get('kernel', '?')}; each row's anchor (the same victim alone) is from that "
                   "same run.\n")


def stalled_peer_table(sec, out):
    """The rdma transport's victim alone and while a peer ringd stalls."""
    out.append("Three clients of one ringd's rdma listener, each with its own rdma_cm connection: "
               "a **victim** that submits one NOP and spins for its completion, a **writer**, and "
               "(on a second ringd process, the peer) an owner that exports a region. The writer "
               "REMOTE_WRITEs into that region once, so ringd's peer link is up; the victim "
               "then samples alone, the peer ringd is stopped with SIGSTOP (its kernel still "
               "takes the forwarded PeerOp; nothing answers it), the writer submits a second "
               "REMOTE_WRITE, and the victim samples again while that op waits. The phase stays "
               "below ringd's 10 s op timeout; \"stalled op pending\" says the op was still "
               "waiting when the phase ended, so the whole phase ran during the stall. Each "
               "connection progresses on its own (service/rdma/task.h), so the target is the "
               "victim's p99 during the stall within 2× of its p99 alone.\n")
    remeasured_note(sec["rows"], out)
    out.append("| where | alone p50 | alone p99 | samples | stalled p50 | stalled p99 | samples | "
               "stalled op pending | ratio (p99 stalled / p99 alone) | target |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in sec["rows"]:
        v = r.get("value")
        if v is None:
            out.append(f"| {r['where']} | {r['missing']} | | | | | | | {fmt_ratio(None)} | "
                       f"{verdict(r)} |")
            continue
        a, l = v["alone"], v["loaded"]
        out.append(f"| {r['where']} | {fmt_ns(a['p50'])} | {fmt_ns(a['p99'])} | "
                   f"{a['samples']:.0f} | {fmt_ns(l['p50'])} | {fmt_ns(l['p99'])} | "
                   f"{l['samples']:.0f} | {'yes' if v.get('stalled_op_pending') else 'no'} | "
                   f"{fmt_ratio(r.get('ratio'))} | {verdict(r)} |")
    out.append("\nFrom `BM_RdmaStalledPeerNop` (bench/rdma_transport.cc) in pinring-bench-rdma "
               "(guest). The same property is a test: "
               "`RdmaStall.StalledPeerRingdDelaysOnlyTheClientThatNamedIt`.\n")


def render(res, docs):
    img = os.path.join(docs, "img")
    os.makedirs(img, exist_ok=True)
    out = []
    quick = res.get("quick")
    out.append("# Benchmarks\n")
    out.append("<!-- Generated by bench/render-benchmarks.py from bench/results/benchmarks.json; "
               "do not edit by hand. -->\n")
    if quick:
        out.append("> **Quick mode**: a few milliseconds per benchmark, to prove the binaries and "
                   "this renderer work. These numbers are not measurements.\n")
    out.append("Every row sits beside its anchor measured **in the same run on the same machine**; "
               "only the ratios are meaningful (the machine is shared and noisy, and the RDMA rows "
               "run under full-system emulation).\n")
    out.append("## How to reproduce\n")
    out.append("```sh\ncmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo && "
               "cmake --build build-bench\nbench/run-benchmarks            # full run, ~5 min idle: "
               "host rows, one soft-RoCE guest boot, profiles\nbench/run-benchmarks --quick --out "
               "/tmp/q   # seconds; what ctest runs (labels unit and rdma)\n```\n")
    out.append("## Run\n")
    out.append(f"- commit: `{res['commit']}`" + (" (with uncommitted changes)" if res.get("dirty") else ""))
    out.append(f"- started {res['started']}, finished {res.get('finished', '?')}")
    out.append(f"- host: {machine_line(res['host'])}")
    gst = res.get("guest")
    if gst:
        out.append(f"- guest: {machine_line(gst['machine'])}; device {gst['device']}, GID index "
                   f"{gst['gid_index']}")
    else:
        out.append(f"- guest: {res.get('guest_note', 'not run')}")
    out.append("- CPUs: the measuring side is pinned to CPU 0 and the echoing side (bare echo "
               "thread/process, or ringd with all its threads) to CPU 1. The machine has only two "
               "cores, so in busy-poll mode ringd's poller and the spinning client occupy both; "
               "nothing else is idle-isolated.")
    out.append("- latency: per-iteration TSC timing in the benchmark loop; p50/p99/p99.9 are of "
               "those samples; mean is Google Benchmark's wall time per iteration (it includes "
               "preemption by other work on the machine, which the p50 does not).")
    out.append(f"- profiler: `perf stat -e instructions true` "
               f"{'works' if res.get('perf_stat_instructions') else 'is not supported here'}; "
               f"profiles use {'perf' if res.get('perf_stat_instructions') else 'valgrind --tool=callgrind'}.\n")

    # Targets summary.
    out.append("## Targets\n")
    out.append("| target | measured ratio | verdict |")
    out.append("|---|---|---|")
    for sec in res["sections"]:
        for r in sec.get("rows", []):
            if r.get("target") is not None:
                rid = r.get("id") or f"fork {r['mode']} {fmt_bytes(r['bytes'])}"
                out.append(f"| {rid} vs {r.get('anchor') or 'fork() with nothing registered'} "
                           f"{r['op']} {r['target']}× | {fmt_ratio(r.get('ratio'))} | "
                           f"{'not measured' if r.get('met') is None else 'met' if r['met'] else 'MISSED'} |")
    out.append("")

    for sec in res["sections"]:
        out.append(f"## {sec['title']}\n")
        if sec.get("guest") and not gst:
            out.append(f"Not run: {res.get('guest_note', 'no guest result')}.\n")
        if sec["id"] == "nop":
            latency_table(sec, out)
            out.append("\nRatios use p50 (the mean is dominated by preemption on this shared "
                       "machine). The busy-poll and adaptive rows are anchored on the bare SPSC "
                       "ping-pong between two processes (pinring's own spsc_ring.h over shared "
                       "memory: the two-cache-line floor); eventfd mode on the bare eventfd "
                       "ping-pong. Against the io_uring NOP round trip:")
            for r in sec["rows"]:
                if r.get("ratio_io_uring") is not None:
                    out.append(f"- {r['name']}: {fmt_ratio(r['ratio_io_uring'])} of io_uring's p50")
            out.append("")
            p = plot_nop(sec, img)
            if p:
                out.append(f"![NOP round trip]({p})\n")
        elif sec["id"] == "batch":
            out.append("Submit-and-wait: commit B NOPs, spin until all B complete, repeat (the "
                       "shape of `io_uring_submit_and_wait(B)`).\n")
            out.append("| batch | pinring p50 per batch | p99 | ops/s at p50 | bytes/s at p50 "
                       "(64 B descriptor + 32 B completion) | ops/s wall clock | io_uring p50 per "
                       "batch | p99 | io_uring ops/s at p50 | ops/s wall clock | ratio (ops/s at "
                       "p50) | target |")
            out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r in sec["rows"]:
                if r.get("shape") in ("streamed", "floor"):
                    continue
                v, a = r.get("value"), r.get("anchor_value")
                bps = g(v, "ops_p50") and g(v, "ops_p50") * 96
                out.append(f"| {r['batch']} | {fmt_ns(g(v, 'p50')) if v else r['missing']} | "
                           f"{fmt_ns(g(v, 'p99'))} | {fmt_rate(g(v, 'ops_p50'), 'op/s')} | "
                           f"{fmt_rate(bps, 'B/s')} | {fmt_rate(g(v, 'ops'), 'op/s')} | "
                           f"{fmt_ns(g(a, 'p50'))} | {fmt_ns(g(a, 'p99'))} | "
                           f"{fmt_rate(g(a, 'ops_p50'), 'op/s')} | {fmt_rate(g(a, 'ops'), 'op/s')} | "
                           f"{fmt_ratio(r.get('ratio'))} | {verdict(r)} |")
            out.append("\nThe ratio uses throughput at the median batch time (batch / p50): the "
                       "wall-clock figure includes every preemption by other work on this shared "
                       "two-core machine and is shown for completeness.\n")
            out.append("Streamed: the ring kept busy, as an application uses it: commit B NOPs "
                       "whenever B slots are free, reap whatever completed, up to 256 in flight, "
                       "so the client's writes and ringd's serving overlap. Both sides are "
                       "wall-clock ops/s (the io_uring anchor is the same run's submit-and-wait "
                       "figure: its NOPs complete inside the submitting call, so it has nothing to "
                       "overlap).\n")
            out.append("| batch | pinring ops/s | bytes/s | io_uring ops/s | ratio | target |")
            out.append("|---|---|---|---|---|---|")
            for r in sec["rows"]:
                if r.get("shape") != "streamed":
                    continue
                v, a = r.get("value"), r.get("anchor_value")
                out.append(f"| {r['batch']} | {fmt_rate(g(v, 'ops'), 'op/s') if v else r['missing']} | "
                           f"{fmt_rate(g(v, 'bytes'), 'B/s')} | {fmt_rate(g(a, 'ops'), 'op/s')} | "
                           f"{fmt_ratio(r.get('ratio'))} | {verdict(r)} |")
            floor_rows = [r for r in sec["rows"] if r.get("shape") == "floor"]
            if floor_rows:
                out.append("\nThe floor of the streamed row: the same bytes (a 64-byte descriptor "
                           "out, a 32-byte completion back, 32 per commit, up to 256 in flight) "
                           "between two processes through pinring's own SPSC rings, with no "
                           "validation and no execution (`BM_SpscStream` in "
                           "bench/baselines.cc).\n")
                out.append("| row | ops/s | bytes/s | anchor ops/s | ratio | target |")
                out.append("|---|---|---|---|---|---|")
                for r in floor_rows:
                    v, a = r.get("value"), r.get("anchor_value")
                    out.append(f"| {r['name']} | "
                               f"{fmt_rate(g(v, 'ops'), 'op/s') if v else r['missing']} | "
                               f"{fmt_rate(g(v, 'bytes'), 'B/s')} | "
                               f"{fmt_rate(g(a, 'ops'), 'op/s') if a else '–'} | "
                               f"{fmt_ratio(r.get('ratio'))} | {verdict(r)} |")
            out.append("")
            p = plot_batch(sec, img)
            if p:
                out.append(f"![Batched throughput]({p})\n")
        elif sec["id"] == "rdma_lat":
            out.append("| size | ringd p50 | p99 | p99.9 | ib_write_lat typical (p50) | p99 | "
                       "p99.9 | ratio (p50) | target | bare verbs WRITE + CQ poll p50 | p99 | "
                       "ratio to bare (p50) |")
            out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r in sec["rows"]:
                v, a, b = r.get("value"), r.get("anchor_value"), r.get("bare_value")
                out.append(f"| {fmt_bytes(r['size'])} | "
                           f"{fmt_ns(g(v, 'p50')) if v else r['missing']} | {fmt_ns(g(v, 'p99'))} | "
                           f"{fmt_ns(g(v, 'p999'))} | "
                           f"{fmt_ns(g(a, 'p50')) if a else r.get('anchor_missing')} | "
                           f"{fmt_ns(g(a, 'p99'))} | {fmt_ns(g(a, 'p999'))} | "
                           f"{fmt_ratio(r.get('ratio'))} | {verdict(r)} | "
                           f"{fmt_ns(g(b, 'p50')) if b else r.get('bare_missing') or 'not run'} | "
                           f"{fmt_ns(g(b, 'p99'))} | "
                           f"{fmt_ratio(r.get('ratio_bare'))} |")
            out.append("\nTwo anchors, because they measure different things. ib_write_lat "
                       "reports half a ping-pong: each side WRITEs and detects the peer's WRITE "
                       "by polling the last byte in memory, so no completion is ever polled. "
                       "ringd completes a COPY when the WRITE's work completion arrives, so the "
                       "fair anchor is a bare verbs loop doing exactly that in the benchmark "
                       "process (`BM_BareVerbsWriteLatency` in bench/verbs.cc: post one "
                       "signaled WRITE on a loopback RC QP pair, poll the CQ until it "
                       "completes). The difference between the two is the ring: descriptor out, "
                       "completion back, through ringd's poller.\n")
            out.append("\nFreeFlow reports about 1.8× for the same comparison; the target is 1.25×.\n")
            p = plot_size(sec, img, "bench-rdma-write-latency", "RDMA WRITE latency (p50)",
                          "µs", "p50")
            if p:
                out.append(f"![RDMA WRITE latency]({p})\n")
        elif sec["id"] == "rdma_rate":
            out.append("| size | ringd msg/s | ringd bytes/s | ib_write_bw msg/s | ib_write_bw "
                       "bytes/s | ratio (msg/s) | target |")
            out.append("|---|---|---|---|---|---|---|")
            for r in sec["rows"]:
                v, a = r.get("value"), r.get("anchor_value")
                out.append(f"| {fmt_bytes(r['size'])} | "
                           f"{fmt_rate(g(v, 'ops'), 'msg/s') if v else r['missing']} | "
                           f"{fmt_rate(g(v, 'bytes'), 'B/s')} | "
                           f"{fmt_rate(g(a, 'ops'), 'msg/s') if a else r.get('anchor_missing')} | "
                           f"{fmt_rate(g(a, 'bytes'), 'B/s')} | {fmt_ratio(r.get('ratio'))} | "
                           f"{verdict(r)} |")
            out.append("\nFreeFlow reports about 0.17× for 64 B; the target is 0.8×.\n")
            p = plot_size(sec, img, "bench-rdma-write-rate", "RDMA WRITE message rate",
                          "messages/s", "ops")
            if p:
                out.append(f"![RDMA WRITE message rate]({p})\n")
        elif sec["id"] == "rdma_transport":
            out.append("| row | p50 | p99 | p99.9 | ops/s | anchor (same boot) | anchor p50 | "
                       "p99 | ratio (p50) | target |")
            out.append("|---|---|---|---|---|---|---|---|---|---|")
            for r in sec["rows"]:
                v, a = r.get("value"), r.get("anchor_value")
                out.append(f"| {r['name']} | {fmt_ns(g(v, 'p50')) if v else r['missing']} | "
                           f"{fmt_ns(g(v, 'p99'))} | {fmt_ns(g(v, 'p999'))} | "
                           f"{fmt_rate(g(v, 'ops'), 'op/s')} | {r['anchor']} | "
                           f"{fmt_ns(g(a, 'p50')) if a else r.get('anchor_missing')} | "
                           f"{fmt_ns(g(a, 'p99'))} | {fmt_ratio(r.get('ratio'))} | "
                           f"{verdict(r)} |")
            out.append("\nA NOP round trip of the rdma transport (protocol version 2) is two "
                       "device operations: the client's doorbell SEND, which carries batches of "
                       "up to 8 descriptors inline, and ringd's RDMA WRITE_WITH_IMM of the "
                       "completions, whose immediate is the client's notification. The pulled "
                       "row adds ringd's RDMA READ of the descriptor from the client's SQ ring "
                       "(what every batch cost in version 1, which also sent a separate "
                       "notification SEND: four operations). A COPY adds ringd's READ + WRITE of "
                       "the data. ib_send_lat reports half a SEND ping-pong (one SEND), "
                       "ib_read_lat one READ round trip; so the ratio counts how many anchor "
                       "operations a transport round trip costs, and 2× is the floor of the "
                       "two-operation path. Target (issue 16): the NOP round trip at most 3× "
                       "ib_send_lat. Both perftest processes busy-poll; so does ringd's rdma "
                       "thread in these rows (`--rdma_poll_us=2000`, longer than a round trip "
                       "under emulation), except the row run with ringd's default 50 µs, "
                       "after which it sleeps on the completion channel and every round trip "
                       "pays a thread wake-up.\n")
            cross = sec.get("crossover") or []
            if cross:
                out.append("Inline against pulled, by batch size (`BM_RdmaTransportBatch`: N NOPs "
                           "submitted at once and reaped whole; the inline queue sends up to the "
                           "protocol's 32 inline, the pulled one never; same ringd, same boot):\n")
                out.append("| batch | inline p50 | inline descriptors/s | pulled p50 | pulled "
                           "descriptors/s | inline / pulled (p50) |")
                out.append("|---|---|---|---|---|---|")
                for c in cross:
                    vi, vp = c.get("inline"), c.get("pull")
                    out.append(f"| {c['batch']} | {fmt_ns(g(vi, 'p50'))} | "
                               f"{fmt_rate(g(vi, 'ops'), 'op/s')} | {fmt_ns(g(vp, 'p50'))} | "
                               f"{fmt_rate(g(vp, 'ops'), 'op/s')} | {fmt_ratio(c.get('ratio'))} |")
                faster = [c["batch"] for c in cross if c.get("ratio") and c["ratio"] < 1]
                slower = [c["batch"] for c in cross if c.get("ratio") and c["ratio"] >= 1]
                if slower:
                    out.append(f"\nIn this run the pulled path is as fast or faster from batch "
                               f"{min(slower)}: that is the crossover.")
                elif faster:
                    out.append(f"\nIn this run inline is faster at every batch measured (up to "
                               f"{max(faster)}): the crossover lies beyond the protocol's 32.")
                out.append(" An inline doorbell of more than 14 descriptors (80 + 64 bytes each) "
                           "no longer fits one packet at rxe's 1024-byte MTU; the client's "
                           "default (`RdmaQueueOptions::max_inline_descriptors = 8`) keeps small "
                           "batches in one packet.\n")
            prof = ((res.get("guest") or {}).get("profiles") or {}).get(
                "BM_RdmaTransportRoundTrip/nop")
            if prof and prof.get("top"):
                out.append(f"Profile of the NOP round trip ({prof['tool']}), top entries by "
                           "self cost:\n\n```")
                out.extend(prof["top"])
                out.append("```\n")
        elif sec["id"] == "reg":
            cap = sec.get("guest_cap")
            out.append("Register + deregister one buffer, touched beforehand (so the rows measure "
                       "pinning, not page faults). `2m` rows use hugetlbfs pages when the pool has "
                       "any, else transparent huge pages (the label says which; no pool is "
                       "reserved by the driver). Anchor for every `2m` row: the `4k` row of the "
                       "same call and size in the same run; ibv_reg_mr's anchor is io_uring's "
                       "buffer registration in the same guest boot." +
                       (f" **Guest sizes are capped at {fmt_bytes(cap)}** (emulated RAM, TCG "
                        "speed); the host sweep goes to 1 GiB." if cap and cap < (1 << 30) else
                        " The guest sweep goes to 1 GiB, as the host's (the guest boots with "
                        "4 GiB of RAM for it)." if cap else "") + "\n")
            out.append("| where | call | pages | size | p50 | p99 | backing | anchor | ratio (p50) |")
            out.append("|---|---|---|---|---|---|---|---|---|")
            by = {(s["where"], s["call"], s["pages"]): s for s in sec["series"]}
            for s in sec["series"]:
                for p in s["points"]:
                    v = p["value"]
                    if s["pages"] == "2m":
                        akey, aname = (s["where"], s["call"], "4k"), "4k pages"
                    elif s["call"] == "BM_IbvRegMr":
                        akey, aname = (s["where"], "BM_IoUringRegisterBuffers", "4k"), "io_uring 4k"
                    else:
                        akey, aname = None, "–"
                    anchor = None
                    if akey in by:
                        anchor = next((q["value"] for q in by[akey]["points"]
                                       if q["bytes"] == p["bytes"]), None)
                    out.append(f"| {s['where']} | {s['call']} | {s['pages']} | {fmt_bytes(p['bytes'])} | "
                               f"{fmt_ns(g(v, 'p50')) if v else p['missing']} | {fmt_ns(g(v, 'p99'))} | "
                               f"{g(v, 'label') or ''} | {aname} | "
                               f"{fmt_ratio(ratio_of(g(v, 'p50'), g(anchor, 'p50')))} |")
            if not sec["series"]:
                out.append("| – | not measured | | | | | | | |")
            out.append("")
            p = plot_reg(sec, img)
            if p:
                out.append(f"![Registration cost]({p})\n")
        elif sec["id"] == "tenants":
            tenants_table(sec, out, img)
        elif sec["id"] == "victim":
            victim_table(sec, out)
        elif sec["id"] == "stalled_peer":
            stalled_peer_table(sec, out)
        elif sec["id"] == "fork":
            first = sec["rows"][0] if sec["rows"] else {}
            out.append(f"From `pinring-forkcheck --json` (one source of truth; {sec.get('source')}), "
                       f"kernel {sec.get('kernel')}, host, io_uring fixed buffers as the pinning "
                       "backend (the host has no RDMA device). Anchor (\"nothing registered\"): "
                       + ("the fork() of the evaluator's helper process with nothing mapped (each "
                          "point is measured in a helper of its own)"
                          if first.get("anchor_bytes") == 0 else
                          "the evaluator's smallest `unpinned` point"
                          + (f" ({fmt_bytes(first['anchor_bytes'])} touched, nothing pinned)"
                             if first.get("anchor_bytes") else "")) +
                       ", same run; the target is judged against it. The `unpinned` point of "
                       "the same size (same memory, not registered) is shown beside it.\n")
            out.append("| mode | backend | registered | fork() median | ratio to nothing registered "
                       "| unpinned fork() same size | ratio to it | target |")
            out.append("|---|---|---|---|---|---|---|---|")
            for r in sec["rows"]:
                out.append(f"| {r['mode']} | {r['backend']} | {fmt_bytes(r['bytes'])} | "
                           f"{fmt_ns(r['fork_us'] * 1e3) if r['fork_us'] else r['error']} | "
                           f"{fmt_ratio(r.get('ratio'))} | "
                           f"{fmt_ns(r['same_size_us'] * 1e3) if r.get('same_size_us') else '–'} | "
                           f"{fmt_ratio(r.get('ratio_same_size'))} | {verdict(r)} |")
            if not sec["rows"]:
                out.append("| not measured | | | | | | |")
            out.append("")
            p = plot_fork(sec, img)
            if p:
                out.append(f"![fork latency]({p})\n")
        seen = {}
        for r in sec.get("rows", []):
            if r.get("met") is False:
                if sec["id"] == "fork":
                    out.append(f"\n**Why fork {r['mode']} {fmt_bytes(r['bytes'])} misses — "
                               f"likely cause and fix** (ratio {fmt_ratio(r.get('ratio'))}, "
                               f"target {r['op']} {r['target']}×): {WHY['fork']}\n")
                    md_profile(r.get("profile"), out)
                else:
                    md_why(r, out, seen)
    with open(os.path.join(docs, "benchmarks.md"), "w") as f:
        f.write("\n".join(out) + "\n")


def ratio_of(a, b):
    return None if a is None or not b else a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--docs", required=True)
    a = ap.parse_args()
    with open(a.results) as f:
        res = json.load(f)
    os.makedirs(a.docs, exist_ok=True)
    render(res, a.docs)
    print(f"render: wrote {os.path.join(a.docs, 'benchmarks.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
