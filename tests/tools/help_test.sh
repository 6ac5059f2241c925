#!/usr/bin/env bash
# Every binary pinring ships answers --help the way a Unix user expects: usage and its own flags
# on stdout, nothing on stderr, exit status 0, no build machine path, no "No flags matched".
# Usage: help_test.sh BINARY...
set -uo pipefail
fail=0
for bin in "$@"; do
  name=$(basename "$bin")
  out=$("$bin" --help 2>/tmp/help_test.$$.err)
  rc=$?
  err=$(cat /tmp/help_test.$$.err)
  rm -f /tmp/help_test.$$.err
  problem=""
  ((rc == 0)) || problem="exit status $rc"
  [[ -z $err ]] || problem="${problem:+$problem; }wrote to stderr: ${err:0:200}"
  grep -qi "usage" <<<"$out" || problem="${problem:+$problem; }no usage line"
  grep -q -- "--" <<<"$out" || problem="${problem:+$problem; }lists no flag"
  grep -q "No flags matched" <<<"$out" && problem="${problem:+$problem; }says \"No flags matched\""
  grep -q "Flags from" <<<"$out" && problem="${problem:+$problem; }titles flags with a source path"
  grep -qE "/(work|home|build|usr/src)/" <<<"$out" && problem="${problem:+$problem; }shows a build path"
  if [[ -n $problem ]]; then
    echo "FAIL: $name --help: $problem"
    fail=1
  else
    echo "ok: $name --help ($(wc -l <<<"$out") lines)"
  fi
done
exit $fail
