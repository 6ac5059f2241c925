#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine:
#   1. install every dependency (scripts/install-deps.sh; quick when all is present)
#   2. build with warnings as errors
#   3. `unit` tests on the host
#   4. `rdma` tests in ONE soft-RoCE guest boot (deploy/softroce/pinring-rxe; natively when the
#      host has an RDMA device), where a missing device is a failure, not a skip; then the `rdma`
#      and `odp` tests again in one guest booted from Debian's newest 7.x kernel (--kernel=7:
#      an rxe with on-demand paging, and the pin semantics of a current kernel)
#   5. the Debian packages: dpkg-buildpackage, then lintian with no error and no warning
#      (scripts/build-debs.sh); the `vm` stage installs them in a guest
#   6. `vm` tests (each boots its own guests)
#   7. an ASan+UBSan build and its `unit` tests
#   8. a clang build with -Wthread-safety as an error (the ABSL_GUARDED_BY annotations)
#   9. the libFuzzer targets: every committed corpus replayed, then 60 s of fuzzing each
#      (scripts/fuzz.sh)
#  10. a ThreadSanitizer build (against a TSan-built Abseil, scripts/absl-tsan.sh) and its `unit`
#      tests, the soak's quick mode among them
# Every stage runs even if an earlier one failed; the exit status is non-zero if any failed.
# Environment: PINRING_BUILD_DIR (default build), PINRING_ASAN_BUILD_DIR (default build-asan),
# PINRING_SKIP_ASAN=1 / PINRING_SKIP_VM=1 / PINRING_SKIP_FUZZ=1 / PINRING_SKIP_TSAN=1 to leave a
# stage out for a quick local run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUILD=${PINRING_BUILD_DIR:-$ROOT/build}
ASAN_BUILD=${PINRING_ASAN_BUILD_DIR:-$ROOT/build-asan}
TSA_BUILD=$ROOT/build-thread-safety
TSAN_BUILD=$ROOT/build-tsan
LOGDIR=$BUILD/test-logs
JOBS=$(nproc)

failed_stages=()
total_passed=0
total_failed=0

stage() { printf '\n=== %s ===\n' "$*"; }

# run_ctest NAME ARGS...: runs ctest (directly or via a wrapper in ARGS), tees its log, and adds
# its pass/fail counts (from ctest's "N% tests passed, M tests failed out of T" line) to the totals.
run_ctest() {
  local name=$1; shift
  local log="$LOGDIR/$name.log"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [[ -n $line ]]; then
    local failed total
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
    total_passed=$((total_passed + total - failed))
    total_failed=$((total_failed + failed))
  elif grep -q 'No tests were found' "$log"; then
    echo "test.sh: stage $name found no tests" >&2
    rc=1
  fi
  if ((rc != 0)); then failed_stages+=("$name"); fi
}

# run_counted NAME CMD...: runs a script that ends with a "NAME: P passed, F failed" line (the
# Debian packages, the fuzzers), tees its log, and adds those counts to the totals.
run_counted() {
  local name=$1; shift
  local log="$LOGDIR/$name.log"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
  if [[ -n $line ]]; then
    total_passed=$((total_passed + $(sed -E "s/$name: ([0-9]+) passed.*/\1/" <<<"$line")))
    total_failed=$((total_failed + $(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$line")))
  fi
  if ((rc != 0)); then failed_stages+=("$name"); fi
}

stage "install dependencies"
scripts/install-deps.sh || { echo "test.sh: dependency install failed" >&2; exit 1; }

stage "build ($BUILD, -Werror)"
mkdir -p "$BUILD"
if ! { cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPINRING_WERROR=ON &&
       cmake --build "$BUILD" -j "$JOBS"; }; then
  echo "test.sh: build failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
mkdir -p "$LOGDIR"

stage "unit tests (host)"
run_ctest unit ctest --test-dir "$BUILD" -L unit --output-on-failure -j "$JOBS" --timeout 600

stage "rdma tests (soft-RoCE: one guest boot unless the host has a device)"
run_ctest rdma deploy/softroce/pinring-rxe run --timeout 2400 --rw "$BUILD" -- \
  ctest --test-dir "$BUILD" -L rdma --output-on-failure --timeout 900

stage "rdma and odp tests in a 7.x guest (deploy/softroce/pinring-rxe run --kernel=7)"
# rxe on 7.x reports ODP for RC: PINRING_EXPECT_ODP=1 makes the odp tests fail if it does not.
PINRING_EXPECT_ODP=1 run_ctest rdma-7 deploy/softroce/pinring-rxe run --kernel=7 --timeout 2400 \
  --rw "$BUILD" -- ctest --test-dir "$BUILD" -L 'rdma|odp' --output-on-failure --timeout 900

stage "Debian packages (dpkg-buildpackage, lintian)"
run_counted debs scripts/build-debs.sh "$BUILD/debs"
# deploy.systemd_e2e installs these in its guest instead of building them again.
export PINRING_DEBS=$BUILD/debs

if [[ ${PINRING_SKIP_VM:-0} != 1 ]]; then
  stage "vm tests (boot guests)"
  # PINRING_REQUIRE_VM=1: a vm test whose guest prerequisites are missing fails instead of skipping.
  PINRING_REQUIRE_VM=1 run_ctest vm ctest --test-dir "$BUILD" -L vm --output-on-failure --timeout 1800
fi

if [[ ${PINRING_SKIP_ASAN:-0} != 1 ]]; then
  stage "ASan+UBSan build ($ASAN_BUILD) and unit tests"
  if cmake -S . -B "$ASAN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPINRING_SANITIZE=ON \
       -DPINRING_WERROR=ON -DPINRING_BUILD_BENCH=OFF && cmake --build "$ASAN_BUILD" -j "$JOBS"; then
    # halt_on_error: a sanitizer report fails the test rather than scrolling past.
    ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      run_ctest asan ctest --test-dir "$ASAN_BUILD" -L unit --output-on-failure -j "$JOBS" --timeout 900
  else
    failed_stages+=("asan-build")
    total_failed=$((total_failed + 1))
  fi
fi

stage "clang -Wthread-safety build ($TSA_BUILD)"
if CC=clang CXX=clang++ cmake -S . -B "$TSA_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
     -DPINRING_THREAD_SAFETY=ON -DPINRING_BUILD_TESTS=OFF -DPINRING_BUILD_BENCH=OFF \
     -DPINRING_BUILD_EXAMPLES=OFF && cmake --build "$TSA_BUILD" -j "$JOBS"; then
  echo "thread-safety: the annotations hold"
  total_passed=$((total_passed + 1))
else
  failed_stages+=("thread-safety")
  total_failed=$((total_failed + 1))
fi

if [[ ${PINRING_SKIP_FUZZ:-0} != 1 ]]; then
  stage "fuzzing (libFuzzer: corpora replayed, 60 s per target)"
  run_counted fuzz scripts/fuzz.sh --seconds="${PINRING_FUZZ_SECONDS:-60}"
fi

if [[ ${PINRING_SKIP_TSAN:-0} != 1 ]]; then
  stage "ThreadSanitizer build ($TSAN_BUILD) and unit tests"
  if absl_tsan=$(scripts/absl-tsan.sh) &&
     CC=clang CXX=clang++ cmake -S . -B "$TSAN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DPINRING_TSAN=ON -DPINRING_BUILD_BENCH=OFF -DPINRING_BUILD_EXAMPLES=OFF \
       -DCMAKE_PREFIX_PATH="$absl_tsan" -Dabsl_DIR="$absl_tsan/lib/cmake/absl" &&
     cmake --build "$TSAN_BUILD" -j "$JOBS"; then
    # halt_on_error: a race report fails the test (ringd exits with it) instead of scrolling past.
    # deploy.install_consumer is left out: it builds an outside program against the installed
    # tree and the system's (uninstrumented) Abseil; the normal and ASan stages run it.
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/tsan.supp" \
      run_ctest tsan ctest --test-dir "$TSAN_BUILD" -L unit -E '^deploy\.install_consumer$' \
        --output-on-failure -j "$JOBS" --timeout 900
  else
    failed_stages+=("tsan-build")
    total_failed=$((total_failed + 1))
  fi
fi

stage "summary"
# Nothing may be left running after the suite (ringd, clients, qemu).
# By command name (at most 15 characters, so not pgrep with one long pattern, which warns).
leftovers=$(ps -eo pid=,comm=,args= | awk '$2 == "ringd" || $2 ~ /^qemu-system-x86/ || $2 ~ /^pinring-/')
if [[ -n $leftovers ]]; then
  echo "test.sh: processes left running after the tests:" >&2
  echo "$leftovers" >&2
  failed_stages+=("leftover-processes")
fi
if ((${#failed_stages[@]})); then
  echo "failed stages: ${failed_stages[*]}"
fi
echo "suite: ${total_passed} passed, ${total_failed} failed"
((${#failed_stages[@]} == 0))
