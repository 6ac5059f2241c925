#!/usr/bin/env python3
"""Renders docs/fork-behaviour.md from the committed docs/fork-data into a temporary file and
checks what a reader relies on: four kernels side by side, every difference between kernels
explained by a named kernel change, no unknown cell. Usage: check_fork_report.py SOURCE_DIR"""
import os
import re
import subprocess
import sys
import tempfile

src = sys.argv[1]
data = os.path.join(src, "docs", "fork-data")
runs = [("host", "host.json"), ("6.1", "guest-6.1.json"), ("6.12", "guest-6.12.json"),
        ("7", "guest-7.json")]
with tempfile.TemporaryDirectory() as td:
    out = os.path.join(td, "fork-behaviour.md")
    args = [sys.executable, os.path.join(src, "scripts", "render-fork-report.py"),
            "--out", out, "--img", os.path.join(td, "img")]
    for label, name in runs:
        args += ["--run", "%s=%s" % (label, os.path.join(data, name))]
    subprocess.run(args, check=True, cwd=src, stdout=subprocess.DEVNULL)
    text = open(out).read()

def block(name):
    m = re.search(r"<!-- BEGIN GENERATED: %s -->\n(.*?)<!-- END GENERATED: %s -->" % (name, name),
                  text, re.S)
    if not m:
        sys.exit("block %s missing" % name)
    return m.group(1)

problems = []
kernels = block("kernels")
for label, _ in runs:
    if "| %s " % label not in kernels.splitlines()[0] + " ":
        problems.append("kernels table lacks column %s" % label)
if "not run" in kernels:
    problems.append("a kernel was not run: " + kernels)
diff = block("differences")
for line in diff.splitlines():
    if "Unexplained" in line:
        problems.append("unexplained difference: " + line[:300])
for line in block("notes").splitlines():
    m = re.search(r"(\d+) unknown", line)
    if m and m.group(1) != "0":
        problems.append("unknown cells: " + line)
if problems:
    print("\n".join(problems))
    sys.exit(1)
print("fork report: %d kernels, %d differences, all explained" %
      (len(runs), sum(1 for l in diff.splitlines() if l.startswith("- "))))
