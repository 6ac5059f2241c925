#!/usr/bin/env bash
# Builds pinring's Debian packages from this tree and checks them with lintian.
#
#   scripts/build-debs.sh [OUTDIR]      (default: build/debs)
#
# The committed tree (git ls-files, plus uncommitted edits) is copied to OUTDIR/src, so that
# dpkg-buildpackage's build tree and its ../*.deb land in OUTDIR and nowhere else. Then:
#   1. dpkg-buildpackage -us -uc -b (debhelper; the symbols file is checked with -c4)
#   2. lintian on every package: any error or warning fails (overrides need a comment)
# The last line is "debs: N passed, M failed" (one check per step).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=$(realpath -m "${1:-$ROOT/build/debs}")
case $1 in -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac 2>/dev/null
for tool in dpkg-buildpackage dh lintian; do
  command -v "$tool" >/dev/null || { echo "build-debs.sh: $tool missing: run scripts/install-deps.sh (or apt-get install debhelper lintian)" >&2; echo "debs: 0 passed, 1 failed"; exit 1; }
done
passed=0
failed=0
rm -rf "$OUT" && mkdir -p "$OUT/src"
git ls-files -z --cached --others --exclude-standard | tar -C "$ROOT" --null -T - -cf - | tar -C "$OUT/src" -xf -
echo "build-debs.sh: dpkg-buildpackage -us -uc -b in $OUT/src (log: $OUT/build.log)"
if (cd "$OUT/src" && dpkg-buildpackage -us -uc -b) >"$OUT/build.log" 2>&1; then
  passed=$((passed + 1))
  for d in "$OUT"/*.deb; do echo "  $d"; done
else
  failed=$((failed + 1))
  echo "build-debs.sh: dpkg-buildpackage FAILED; the end of its log:" >&2
  grep -v '^\[[0-9]*/[0-9]*\]' "$OUT/build.log" | tail -n 40 >&2
  echo "debs: $passed passed, $failed failed"
  exit 1
fi
rm -rf "$OUT/src"
debs=("$OUT"/*.deb)  # the four packages and their automatic -dbgsym packages
echo "build-debs.sh: lintian on ${#debs[@]} packages"
# As root (CI), lintian wants --allow-root; it unpacks the packages, runs nothing from them.
if lintian --allow-root --fail-on error,warning --display-level '>=warning' "${debs[@]}" >"$OUT/lintian.log" 2>&1; then
  passed=$((passed + 1))
  echo "build-debs.sh: lintian: no error, no warning"
else
  failed=$((failed + 1))
  echo "build-debs.sh: lintian FAILED:" >&2
  cat "$OUT/lintian.log" >&2
fi
echo "debs: $passed passed, $failed failed"
((failed == 0))
