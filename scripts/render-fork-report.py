#!/usr/bin/env python3
"""Render docs/fork-behaviour.md from pinring-forkcheck JSON, one file per kernel.

Usage: scripts/render-fork-report.py [--run LABEL=PATH ...] [--out docs/fork-behaviour.md]
                                     [--img docs/img]

The default runs are the host and the three soft-RoCE guest kernels, as scripts/fork-report.sh
writes them: host=docs/fork-data/host.json, 6.1=docs/fork-data/guest-6.1.json,
6.12=docs/fork-data/guest-6.12.json, 7=docs/fork-data/guest-7.json. Missing files are shown as
"not run". Only the blocks between <!-- BEGIN GENERATED: name --> and <!-- END GENERATED: name -->
are rewritten; the prose around them is kept as written. Plots
(docs/img/fork-latency-<label>.png) are drawn with gnuplot when it is installed.
Python 3 standard library only.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

MODES = ["kernel", "dontfork", "readonly", "write-for-read", "shared", "odp"]
DEFAULT_RUNS = [("host", "docs/fork-data/host.json"), ("6.1", "docs/fork-data/guest-6.1.json"),
                ("6.12", "docs/fork-data/guest-6.12.json"), ("7", "docs/fork-data/guest-7.json")]
# One letter per outcome, so four kernels fit in a cell.
CODE = {"coherent": "C", "stale": "S", "leak": "L", "child-signal": "X", "refused": "R",
        "pin-failed": "P", "device-fault": "F", "skipped": "–", "unknown": "?"}

# Kernel changes behind the cells that differ between kernels: (predicate on (backend, scenario,
# mode), text). The release and commit subject come from the kernel's history; each is checked by
# the cells themselves: a difference no entry explains is listed as unexplained.
KERNEL_CHANGES = [
    (lambda b, s, m: m == "odp",
     "odp needs on-demand paging in the driver: rxe has none in 6.1 and 6.12 "
     "(`ibv_query_device_ex` reports no ODP), and the rxe ODP support that came after 6.12 "
     "fails pinring's data self-test on Debian's 7.2 and 7.3 kernels (the bytes of each access "
     "land at the start of the page): pinring refuses odp there, so the cells are skipped with "
     "that reason, never pinned instead"),
    (lambda b, s, m: m == "readonly" and b == "verbs",
     "6.2 made read-only long-term pins reliable in COW mappings (unsharing the page at pin "
     "time, on top of 5.19's PageAnonExclusive) and dropped FOLL_FORCE from the RDMA core "
     "(\"RDMA/umem: remove FOLL_FORCE usage\"): on 6.1 a read-only MR is still pinned "
     "FOLL_FORCE|FOLL_WRITE, i.e. the kernel itself does write-for-read"),
    (lambda b, s, m: b == "verbs" and s == "file-shared-disk" and m not in ("readonly", "odp"),
     "6.5 refuses long-term write pins of file-backed shared mappings whose filesystem tracks "
     "dirty pages (\"mm/gup: disallow FOLL_LONGTERM GUP-nonfast writing to file-backed "
     "mappings\" and its GUP-fast twin): the set_page_dirty() problem of the 2020 thread, "
     "answered by refusing the pin (EFAULT); tmpfs, which has no writeback, is still allowed"),
    (lambda b, s, m: b == "iouring" and s.startswith("file-"),
     "before 6.5 io_uring itself refused fixed buffers in any file-backed mapping but shmem and "
     "hugetlbfs (EOPNOTSUPP), MAP_PRIVATE ones included; 6.5 left the decision to GUP (\"io_uring: "
     "rsrc: delegate VMA file-backed check to GUP\"), which refuses only shared mappings that "
     "need dirty tracking (EFAULT), so a MAP_PRIVATE file mapping now registers, on its private "
     "copy"),
]


def load(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def cell_map(doc, backend):
    out = {}
    if not doc:
        return out
    for c in doc["cells"]:
        if c["backend"] == backend:
            out[(c["scenario"], c["mode"])] = c
    return out


def code(c):
    if c is None:
        return "·"
    x = CODE.get(c["outcome"], "?")
    return x + "!" if c["mismatch"] else x


def scenarios(runs):
    best = []
    for _, d in runs:
        if d and len(d["scenarios"]) > len(best):
            best = [(s["name"], s["description"]) for s in d["scenarios"]]
    return best


def kernel_row(doc):
    k = doc["kernel"]
    nl = k["netlink_copy_on_fork"]
    nl = ("on" if nl else "off") if nl is not None else "unavailable"
    return [k["release"], nl, "yes" if k["ibv_fork_unneeded"] else "no",
            "yes" if k["version_has_copy_on_fork"] else "no",
            "yes" if k["version_has_reliable_readonly_pins"] else "no",
            ", ".join("%s: %s" % (b, v if v == "available" else "absent")
                      for b, v in doc.get("backends", {}).items())]


def gen_kernels(runs):
    rows = ["| | " + " | ".join(l for l, _ in runs) + " |", "|---" * (len(runs) + 1) + "|"]
    names = ["kernel (uname -r)", "copy-on-fork (rdma netlink)", "IBV_FORK_UNNEEDED",
             "copy-on-fork of pinned pages by version (>= 5.9)",
             "reliable read-only long-term pins by version (>= 6.2)", "pin backends"]
    cols = [kernel_row(d) if d else ["not run"] * len(names) for _, d in runs]
    for i, n in enumerate(names):
        rows.append("| %s | %s |" % (n, " | ".join(c[i] for c in cols)))
    return "\n".join(rows)


def ran_cells(runs, maps, scen, mode):
    """(label, cell) for each kernel that ran this cell (a skip is no result); maps[i] is
    cell_map(runs[i], backend)."""
    out = []
    for (label, _), cm in zip(runs, maps):
        c = cm.get((scen, mode))
        if c is not None and c["outcome"] != "skipped":
            out.append((label, c))
    return out


def differs(ran):
    return len({c["outcome"] for _, c in ran}) > 1


def gen_matrix(runs, backend):
    if not any(d and any(c["backend"] == backend and c["outcome"] != "skipped" for c in d["cells"])
               for _, d in runs):
        return "_the %s backend ran on no kernel here_" % backend
    legend = ("Each cell: %s, in that order. C coherent, S stale, L leak, X child-signal, "
              "R refused, P pin-failed, F device-fault, – skipped, · not run; `!` marks a result "
              "that differs from what the mode promises. **Bold**: the kernels disagree "
              "(explained below)." % " / ".join(l for l, _ in runs))
    maps = [cell_map(d, backend) for _, d in runs]
    rows = [legend, "", "| scenario | " + " | ".join(MODES) + " |", "|---" * (len(MODES) + 1) + "|"]
    for name, _ in scenarios(runs):
        cells = []
        for m in MODES:
            txt = " ".join(code(cm.get((name, m))) for cm in maps)
            cells.append("**%s**" % txt if differs(ran_cells(runs, maps, name, m)) else txt)
        rows.append("| %s | %s |" % (name, " | ".join(cells)))
    return "\n".join(rows)


def gen_scenarios(runs):
    rows = ["| scenario | what it does |", "|---|---|"]
    for name, desc in scenarios(runs):
        rows.append("| %s | %s |" % (name, desc))
    return "\n".join(rows)


def gen_differences(runs):
    lines = []
    for backend in ("iouring", "verbs"):
        maps = [cell_map(d, backend) for _, d in runs]
        for name, _ in scenarios(runs):
            for m in MODES:
                ran = ran_cells(runs, maps, name, m)
                if not differs(ran):
                    continue
                why = [t for pred, t in KERNEL_CHANGES if pred(backend, name, m)]
                shown = ", ".join("%s %s" % (l, c["outcome"]) for l, c in ran)
                lines.append("- **%s/%s/%s**: %s. %s" % (
                    backend, name, m, shown,
                    ("_Why_: " + " ".join(why)) if why else
                    "_Unexplained by the list of kernel changes in scripts/render-fork-report.py_: "
                    + "; ".join("%s: %s" % (l, c["explanation"] or c["outcome"]) for l, c in ran)))
    return "\n".join(lines) if lines else "_No cell differs between the kernels that ran it._"


def gen_notes(runs):
    lines = []
    for label, doc in runs:
        if not doc:
            lines.append("- %s: not run." % label)
            continue
        seen = {}
        for c in doc["cells"]:
            if c["outcome"] == "coherent" and not c["mismatch"] and not c["explanation"]:
                continue
            if c["outcome"] == "skipped" and c["blame"] == "environment" and "unavailable" in c["explanation"]:
                continue  # a whole backend absent: said once in the kernels table
            key = (c["outcome"], c["blame"], c["explanation"], c["mismatch"])
            seen.setdefault(key, []).append("%s/%s/%s" % (c["backend"], c["scenario"], c["mode"]))
        for (outcome, blame, expl, mism), where in sorted(seen.items(), key=lambda kv: (not kv[0][3], kv[0][1], kv[0][0])):
            shown = ", ".join(where[:6]) + (" and %d more" % (len(where) - 6) if len(where) > 6 else "")
            lines.append("- **%s%s** %s [%s]: %s — _%s_" % (
                "MISMATCH " if mism else "", label, outcome, blame, shown, expl))
        s = doc["summary"]
        lines.append("- %s: %d cells, %d mismatches, %d unknown." % (
            label, s["cells"], s["mismatches"], s["unknown"]))
    return "\n".join(lines)


def cost_table(doc):
    if not doc or not doc["costs"]:
        return "_no cost data_"
    floor = [cs for cs in doc["costs"] if cs["mode"] == "floor"]
    series = [cs for cs in doc["costs"] if cs["mode"] != "floor"]
    sizes = sorted({p["bytes"] for cs in series for p in cs["points"]})
    backend = series[0]["backend"] if series else floor[0]["backend"]
    head = "Backend %s; each point measured in a helper process of its own." % backend
    if floor and floor[0]["points"] and not floor[0]["points"][0]["error"]:
        head += (" Floor, the helper's fork() with nothing registered: %.3f ms."
                 % (floor[0]["points"][0]["fork_median_us"] / 1000.0))
    elif not floor:
        head = "Backend %s; measured in the evaluator's own process (an older run)." % backend
    out = [head, "", "fork() median in ms (child copied MiB):", "",
           "| mode | " + " | ".join("%d MiB" % (s >> 20) for s in sizes) + " |",
           "|---" * (len(sizes) + 1) + "|"]
    for cs in series:
        pts = {p["bytes"]: p for p in cs["points"]}
        cells = []
        for s in sizes:
            p = pts.get(s)
            if p is None or p["error"]:
                cells.append("error" if p else "–")
            else:
                cells.append("%.2f (%.0f)" % (p["fork_median_us"] / 1000.0,
                                              max(p["child_private_kib"], 0) / 1024.0))
        out.append("| %s | %s |" % (cs["mode"], " | ".join(cells)))
    out += ["", "Registration time in ms / VMAs added (mapping + pin, incl. backend mappings):", "",
            "| mode | " + " | ".join("%d MiB" % (s >> 20) for s in sizes) + " |",
            "|---" * (len(sizes) + 1) + "|"]
    for cs in series:
        pts = {p["bytes"]: p for p in cs["points"]}
        cells = []
        for s in sizes:
            p = pts.get(s)
            cells.append("–" if p is None or p["error"] else "%.2f / %+d" % (
                p["register_ms"], p["vmas_after"] - p["vmas_before"]))
        out.append("| %s | %s |" % (cs["mode"], " | ".join(cells)))
    return "\n".join(out)


def gen_costs(runs):
    parts = []
    for label, doc in runs:
        note = "" if label == "host" else (" (soft-RoCE guest under TCG emulation: sizes capped at "
                                            "64 MiB; absolute times mean nothing, compare modes "
                                            "within one kernel only)")
        img = "\n\n![fork latency %s](img/fork-latency-%s.png)" % (label, label) if doc else ""
        parts.append("#### %s%s\n\n%s%s" % ("Host" if label == "host" else "Linux " + label, note,
                                              cost_table(doc), img))
    return "\n\n".join(parts)


def largest(doc, mode):
    if not doc:
        return None
    for cs in doc["costs"]:
        if cs["mode"] == mode:
            pts = [p for p in cs["points"] if not p["error"]]
            if pts:
                return max(pts, key=lambda p: p["bytes"])
    return None


def gen_recommend(host):
    def cost(mode):
        p = largest(host, mode)
        if not p:
            return "n/a"
        return "%.0f ms per fork at %d MiB" % (p["fork_median_us"] / 1000.0, p["bytes"] >> 20)
    rows = ["| program | recommended mode | why (measured on the host) |", "|---|---|---|",
            "| never forks (and links nothing that forks) | kernel | no cost at all without fork(); "
            "correct on any kernel with copy-on-fork (>= 5.9) |",
            "| long-lived server that forks/execs helpers (system(), popen, posix_spawn fallbacks) "
            "| dontfork | the child never needs the registered memory; fork stays flat (%s vs kernel %s); "
            "a helper that touches the range dies with SIGSEGV instead of corrupting anything |"
            % (cost("dontfork"), cost("kernel")),
            "| Python-style multiprocessing pool (fork, child keeps running Python code) | dontfork "
            "for registered buffers, or shared when workers must read them | kernel mode copies "
            "every pinned page into every worker (%s); a worker touching a dontfork range gets "
            "SIGSEGV, so only registered buffers may be dontfork, never general heap |"
            % cost("kernel"),
            "| parent and children cooperate on one buffer (pre-fork server sharing a ring) | shared "
            "| the memfd is never COWed: every process and the device see the same bytes; a "
            "child's write DOES reach the device — by design |",
            "| device only reads (submission rings, send buffers) on kernels < 6.2 | write-for-read "
            "(or readonly after pre-faulting) | forces an exclusive page at pin time; a read-only pin "
            "of never-touched memory is the 2020 zero-page case |",
            "| device only reads, kernel >= 6.2 | readonly | reliable read-only long-term pins; "
            "also allows registering read-only memory |",
            "| anything that frees/remaps registered memory (MADV_DONTNEED, munmap, realloc) | "
            "none helps: deregister first | every private mode is stale in dontneed/munmap-remap |"]
    return "\n".join(rows)


def plot(doc, label, imgdir):
    if not doc or not doc["costs"] or shutil.which("gnuplot") is None:
        return False
    os.makedirs(imgdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        plots = []
        for cs in doc["costs"]:
            if cs["mode"] == "floor":
                continue
            path = os.path.join(td, cs["mode"] + ".dat")
            with open(path, "w") as f:
                for p in cs["points"]:
                    if not p["error"] and p["fork_median_us"] > 0:
                        f.write("%g %g\n" % (p["bytes"] / 1048576.0, p["fork_median_us"] / 1000.0))
            plots.append("'%s' using 1:2 with linespoints title '%s'" % (path, cs["mode"]))
        out = os.path.join(imgdir, "fork-latency-%s.png" % label)
        script = "\n".join([
            "set terminal png size 800,500",
            "set output '%s'" % out,
            "set title 'fork() latency vs registered size (%s, Linux %s, backend %s)'" % (
                label, doc["kernel"]["release"], doc["costs"][-1]["backend"]),
            "set logscale xy", "set xlabel 'registered size (MiB)'",
            "set ylabel 'fork() median (ms)'", "set key left top", "set grid",
            "plot " + ", ".join(plots), ""])
        subprocess.run(["gnuplot"], input=script.encode(), check=True)
    return True


SKELETON = """# Fork behaviour of pinned memory: measured

Generated by `scripts/fork-report.sh` (forkcheck on the host and in three guest kernels, then
`scripts/render-fork-report.py`). Only the prose outside the GENERATED blocks is written by hand.

## Kernels

<!-- BEGIN GENERATED: kernels -->
<!-- END GENERATED: kernels -->

## Scenarios

<!-- BEGIN GENERATED: scenarios -->
<!-- END GENERATED: scenarios -->

## Matrix: io_uring fixed buffers

<!-- BEGIN GENERATED: matrix-iouring -->
<!-- END GENERATED: matrix-iouring -->

## Matrix: verbs (ibv_reg_mr, RDMA READ over loopback RC)

<!-- BEGIN GENERATED: matrix-verbs -->
<!-- END GENERATED: matrix-verbs -->

## What changes between kernels, and why

<!-- BEGIN GENERATED: differences -->
<!-- END GENERATED: differences -->

## Every non-coherent or unexpected result, explained

<!-- BEGIN GENERATED: notes -->
<!-- END GENERATED: notes -->

## Costs

<!-- BEGIN GENERATED: costs -->
<!-- END GENERATED: costs -->

## Recommendations

<!-- BEGIN GENERATED: recommend -->
<!-- END GENERATED: recommend -->
"""


def replace_block(text, name, body):
    pat = re.compile(r"(<!-- BEGIN GENERATED: %s -->\n).*?(<!-- END GENERATED: %s -->)"
                     % (re.escape(name), re.escape(name)), re.S)
    if not pat.search(text):
        sys.exit("render-fork-report: block '%s' missing from the report" % name)
    return pat.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", action="append", default=[], metavar="LABEL=PATH",
                    help="a forkcheck JSON and its column label (repeat; default: host, 6.1, "
                         "6.12, 7 under docs/fork-data/)")
    ap.add_argument("--out", default="docs/fork-behaviour.md")
    ap.add_argument("--img", default="docs/img")
    a = ap.parse_args()
    specs = DEFAULT_RUNS
    if a.run:
        specs = []
        for r in a.run:
            if "=" not in r:
                sys.exit("render-fork-report: --run wants LABEL=PATH, got %r" % r)
            specs.append(tuple(r.split("=", 1)))
    runs = [(label, load(path)) for label, path in specs]
    if not any(d for _, d in runs):
        sys.exit("render-fork-report: none of %s exists" % ", ".join(p for _, p in specs))
    host = dict(runs).get("host")
    text = open(a.out).read() if os.path.exists(a.out) else SKELETON
    if "BEGIN GENERATED: differences" not in text:
        text = SKELETON
    blocks = {
        "kernels": gen_kernels(runs),
        "scenarios": gen_scenarios(runs),
        "matrix-iouring": gen_matrix(runs, "iouring"),
        "matrix-verbs": gen_matrix(runs, "verbs"),
        "differences": gen_differences(runs),
        "notes": gen_notes(runs),
        "costs": gen_costs(runs),
        "recommend": gen_recommend(host),
    }
    for name, body in blocks.items():
        text = replace_block(text, name, body)
    with open(a.out, "w") as f:
        f.write(text)
    for label, doc in runs:
        if plot(doc, label, a.img):
            print("wrote %s/fork-latency-%s.png" % (a.img, label))
    print("wrote %s" % a.out)


if __name__ == "__main__":
    main()
