#!/usr/bin/env python3
"""Render docs/fork-behaviour.md from pinring-forkcheck JSON (host + soft-RoCE guest).

Usage: scripts/render-fork-report.py [--host docs/fork-data/host.json]
                                     [--guest docs/fork-data/guest.json]
                                     [--out docs/fork-behaviour.md] [--img docs/img]

Only the blocks between <!-- BEGIN GENERATED: name --> and <!-- END GENERATED: name --> are
rewritten; the prose around them is kept as written. A missing file creates the skeleton.
Plots (docs/img/fork-latency-<label>.png) are drawn with gnuplot when it is installed.
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

MODES = ["kernel", "dontfork", "readonly", "write-for-read", "shared"]


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


def mark(c):
    if c is None:
        return "–"
    o = c["outcome"]
    if c["mismatch"]:
        return "**%s !**" % o
    if o not in ("coherent", "skipped"):
        return "%s \\*" % o
    return o


def scenarios(*docs):
    for d in docs:
        if d:
            return [(s["name"], s["description"]) for s in d["scenarios"]]
    return []


def kernel_row(doc):
    k = doc["kernel"]
    nl = k["netlink_copy_on_fork"]
    nl = ("on" if nl else "off") if nl is not None else "unavailable (%s)" % k["netlink_note"]
    return [k["release"], nl, "yes" if k["ibv_fork_unneeded"] else "no",
            "yes" if k["version_has_copy_on_fork"] else "no",
            "yes" if k["version_has_reliable_readonly_pins"] else "no",
            ", ".join("%s: %s" % (b, v if v == "available" else "absent")
                      for b, v in doc.get("backends", {}).items())]


def gen_kernels(host, guest):
    rows = ["| | host | soft-RoCE guest |", "|---|---|---|"]
    names = ["kernel (uname -r)", "copy-on-fork (rdma netlink)", "IBV_FORK_UNNEEDED",
             "copy-on-fork of pinned pages by version (>= 5.9)",
             "reliable read-only long-term pins by version (>= 6.2)", "pin backends"]
    h = kernel_row(host) if host else ["not run"] * len(names)
    g = kernel_row(guest) if guest else ["not run"] * len(names)
    for n, a, b in zip(names, h, g):
        rows.append("| %s | %s | %s |" % (n, a, b))
    return "\n".join(rows)


def gen_matrix_pair(host, guest, backend):
    hm, gm = cell_map(host, backend), cell_map(guest, backend)
    rows = ["| scenario | " + " | ".join(MODES) + " |", "|---" * (len(MODES) + 1) + "|"]
    for name, _ in scenarios(host, guest):
        cells = []
        for m in MODES:
            cells.append("%s / %s" % (mark(hm.get((name, m))), mark(gm.get((name, m)))))
        rows.append("| %s | %s |" % (name, " | ".join(cells)))
    return "\n".join(rows)


def gen_matrix_one(doc, backend):
    cm = cell_map(doc, backend)
    if not cm or all(c["outcome"] == "skipped" for c in cm.values()):
        reason = next(iter(cm.values()))["explanation"] if cm else "not run"
        return "_%s backend did not run: %s_" % (backend, reason)
    rows = ["| scenario | " + " | ".join(MODES) + " |", "|---" * (len(MODES) + 1) + "|"]
    for name, _ in scenarios(doc):
        rows.append("| %s | %s |" % (name, " | ".join(mark(cm.get((name, m))) for m in MODES)))
    return "\n".join(rows)


def gen_scenarios(host, guest):
    rows = ["| scenario | what it does |", "|---|---|"]
    for name, desc in scenarios(host, guest):
        rows.append("| %s | %s |" % (name, desc))
    return "\n".join(rows)


def gen_notes(host, guest):
    lines = []
    for label, doc in (("host", host), ("guest", guest)):
        if not doc:
            continue
        seen = {}
        for c in doc["cells"]:
            if c["outcome"] == "coherent" and not c["mismatch"] and not c["explanation"]:
                continue
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
    sizes = sorted({p["bytes"] for cs in doc["costs"] for p in cs["points"]})
    backend = doc["costs"][0]["backend"]
    out = ["Backend %s; fork() median in ms (child copied MiB):" % backend, "",
           "| mode | " + " | ".join("%d MiB" % (s >> 20) for s in sizes) + " |",
           "|---" * (len(sizes) + 1) + "|"]
    for cs in doc["costs"]:
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
    for cs in doc["costs"]:
        pts = {p["bytes"]: p for p in cs["points"]}
        cells = []
        for s in sizes:
            p = pts.get(s)
            cells.append("–" if p is None or p["error"] else "%.2f / %+d" % (
                p["register_ms"], p["vmas_after"] - p["vmas_before"]))
        out.append("| %s | %s |" % (cs["mode"], " | ".join(cells)))
    return "\n".join(out)


def gen_costs(host, guest):
    parts = []
    for label, doc, note in (("Host", host, ""),
                             ("Soft-RoCE guest", guest,
                              " (TCG emulation: sizes capped at 64 MiB; absolute times mean "
                              "nothing, compare modes within the guest only)")):
        parts.append("#### %s%s\n\n%s\n\n![fork latency %s](img/fork-latency-%s.png)" % (
            label, note, cost_table(doc), label.lower(), "host" if label == "Host" else "guest"))
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


def gen_recommend(host, guest):
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
                label, doc["kernel"]["release"], doc["costs"][0]["backend"]),
            "set logscale xy", "set xlabel 'registered size (MiB)'",
            "set ylabel 'fork() median (ms)'", "set key left top", "set grid",
            "plot " + ", ".join(plots), ""])
        subprocess.run(["gnuplot"], input=script.encode(), check=True)
    return True


SKELETON = """# Fork behaviour of pinned memory: measured

Generated by `scripts/render-fork-report.py` from `docs/fork-data/host.json` and
`docs/fork-data/guest.json` (written by `pinring-forkcheck --json=...`). Only the prose outside the
GENERATED blocks is written by hand. The modes themselves are described in `docs/fork-modes.md`.

## Kernels

<!-- BEGIN GENERATED: kernels -->
<!-- END GENERATED: kernels -->

## Scenarios

<!-- BEGIN GENERATED: scenarios -->
<!-- END GENERATED: scenarios -->

## Matrix: io_uring fixed buffers, host / guest

<!-- BEGIN GENERATED: matrix-iouring -->
<!-- END GENERATED: matrix-iouring -->

## Matrix: verbs (ibv_reg_mr, RDMA READ over loopback RC), guest

<!-- BEGIN GENERATED: matrix-verbs -->
<!-- END GENERATED: matrix-verbs -->

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
    ap.add_argument("--host", default="docs/fork-data/host.json")
    ap.add_argument("--guest", default="docs/fork-data/guest.json")
    ap.add_argument("--out", default="docs/fork-behaviour.md")
    ap.add_argument("--img", default="docs/img")
    a = ap.parse_args()
    host, guest = load(a.host), load(a.guest)
    if not host and not guest:
        sys.exit("render-fork-report: neither %s nor %s exists" % (a.host, a.guest))
    text = open(a.out).read() if os.path.exists(a.out) else SKELETON
    blocks = {
        "kernels": gen_kernels(host, guest),
        "scenarios": gen_scenarios(host, guest),
        "matrix-iouring": "Each cell: host / guest. `!` = differs from what the mode is expected "
                          "to guarantee; `*` = expected non-coherent (by design or application "
                          "error).\n\n" + gen_matrix_pair(host, guest, "iouring"),
        "matrix-verbs": gen_matrix_one(guest, "verbs") + "\n\nOn the host: " +
                        ((gen_matrix_one(host, "verbs") if host else "not run")
                         if host and not all(c["outcome"] == "skipped" for c in host["cells"]
                                             if c["backend"] == "verbs")
                         else "_no RDMA device (CONFIG_INFINIBAND off): every verbs cell skipped._"),
        "notes": gen_notes(host, guest),
        "costs": gen_costs(host, guest),
        "recommend": gen_recommend(host, guest),
    }
    for name, body in blocks.items():
        text = replace_block(text, name, body)
    with open(a.out, "w") as f:
        f.write(text)
    for label, doc in (("host", host), ("guest", guest)):
        if plot(doc, label, a.img):
            print("wrote %s/fork-latency-%s.png" % (a.img, label))
    print("wrote %s" % a.out)


if __name__ == "__main__":
    main()
