#!/usr/bin/env bash
# Builds pinring's libFuzzer targets (tests/fuzz: control protocol, data plane, rdma wire,
# config) with clang, ASan and UBSan, replays every committed seed corpus, then fuzzes each target.
#
#   scripts/fuzz.sh                   replay + 60 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh --seconds=3600    a campaign: an hour per target
#   scripts/fuzz.sh --replay-only     the corpora only
#   scripts/fuzz.sh --target=control  one target
#   scripts/fuzz.sh --coverage        llvm-cov line coverage of the decoder files, from the
#                                     committed seeds plus a campaign's corpus (no fuzzing)
#
# A campaign's new inputs go to $PINRING_FUZZ_DIR/corpus/<target> (default build-fuzz/), never into
# the committed seeds. Any crash fails the run and prints the crashing input (hex) and the
# reproducer command. Environment: PINRING_FUZZ_DIR (default build-fuzz), JOBS (default nproc).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${PINRING_FUZZ_DIR:-$ROOT/build-fuzz}
SECONDS_PER_TARGET=60
REPLAY_ONLY=0
COVERAGE=0
TARGETS=(control dataplane rdma_wire config)

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
for arg in "$@"; do
  case $arg in
    --seconds=*) SECONDS_PER_TARGET=${arg#--seconds=} ;;
    --replay-only) REPLAY_ONLY=1 ;;
    --coverage) COVERAGE=1 ;;
    --target=*) TARGETS=("${arg#--target=}") ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
[[ $SECONDS_PER_TARGET =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --seconds wants a number" >&2; exit 2; }
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ missing: run scripts/install-deps.sh" >&2; exit 1; }

# build_targets DIR CMAKE_FLAG...: configures DIR for the fuzz targets (clang, libFuzzer) with the
# extra flags and builds the chosen targets.
build_targets() {
  local dir=$1
  shift
  CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPINRING_FUZZ=ON -DPINRING_BUILD_TESTS=OFF -DPINRING_BUILD_BENCH=OFF \
    -DPINRING_BUILD_EXAMPLES=OFF "$@" >/dev/null &&
    cmake --build "$dir" -j "${JOBS:-$(nproc)}" --target "${TARGETS[@]/#/fuzz_}"
}

# The decoder files of each target: what its untrusted bytes reach first. Files that also hold
# code no decoder reaches (device operations, the client side) are measured by function instead.
decoder_files() {
  case $1 in
    control) echo service/client_session.cc service/untrusted_memfd.cc service/tenant_table.cc ;;
    dataplane) echo service/queue_server.cc service/descriptor_validator.cc service/cpu_backend.cc ;;
    rdma_wire) echo service/rdma/connect_request.cc ;;
    config) echo service/config.cc service/flags.cc ;;
  esac
}
decoder_functions() {
  case $1 in
    rdma_wire) echo 'ValidateRdmaDescriptor|IsWellFormed|ParseGrantToken|FormatGrantToken' ;;
  esac
}

if ((COVERAGE)); then
  COV=${PINRING_FUZZ_COV_DIR:-$ROOT/build-fuzz-cov}
  PROFDATA=$(command -v llvm-profdata-14 || command -v llvm-profdata)
  LLVMCOV=$(command -v llvm-cov-14 || command -v llvm-cov)
  [[ -n $PROFDATA && -n $LLVMCOV ]] || { echo "fuzz.sh: llvm-profdata/llvm-cov missing: apt-get install llvm" >&2; exit 1; }
  echo "fuzz.sh: building the targets with llvm-cov instrumentation in $COV"
  build_targets "$COV" -DPINRING_COVERAGE=ON || { echo "fuzz.sh: coverage build failed" >&2; exit 1; }
  report=$COV/coverage.txt
  : >"$report"
  for t in "${TARGETS[@]}"; do
    bin=$COV/tests/fuzz/fuzz_$t
    rm -f "$COV"/prof-"$t"-*.profraw
    inputs=("$ROOT/tests/fuzz/corpus/$t")
    [[ -d $OUT/corpus/$t ]] && inputs+=("$OUT/corpus/$t")
    n=$(find "${inputs[@]}" -type f | wc -l)
    echo "fuzz.sh: $t: running $n inputs (seeds + campaign corpus) once each"
    LLVM_PROFILE_FILE="$COV/prof-$t-%p.profraw" "$bin" -runs=0 "${inputs[@]}" >"$COV/cov_$t.log" 2>&1 ||
      { echo "fuzz.sh: $t: an input failed under the coverage build:" >&2; tail -n 20 "$COV/cov_$t.log" >&2; exit 1; }
    "$PROFDATA" merge -sparse "$COV"/prof-"$t"-*.profraw -o "$COV/$t.profdata"
    read -r -a files <<<"$(decoder_files "$t")"
    {
      echo "== $t ($n inputs): line coverage of its decoder files"
      "$LLVMCOV" report "$bin" -instr-profile="$COV/$t.profdata" "${files[@]/#/$ROOT/}" |
        sed "s|$ROOT/||"
      if fns=$(decoder_functions "$t") && [[ -n $fns ]]; then
        echo "-- $t: decoder functions in files shared with other code ($fns)"
        "$LLVMCOV" report "$bin" -instr-profile="$COV/$t.profdata" -show-functions \
          "$ROOT/service/rdma/rdma_executor.cc" "$ROOT/ringlib/src/rdma/rdma_queue.cc" \
          "$ROOT/ringlib/wire/rdma_wire.h" | sed "s|$ROOT/||" |
          grep -E "^(Name|---|File)|$fns" || true
      fi
      echo
    } | tee -a "$report"
  done
  echo "fuzz.sh: the report is in $report; per-line views: $LLVMCOV show <binary> -instr-profile=$COV/<target>.profdata <file>"
  exit 0
fi

echo "fuzz.sh: building the targets in $OUT (clang, ASan+UBSan, libFuzzer)"
if ! build_targets "$OUT" -DPINRING_SANITIZE=ON; then
  echo "fuzz.sh: build failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
passed=0
failed=0
for t in "${TARGETS[@]}"; do
  bin=$OUT/tests/fuzz/fuzz_$t
  seeds=$ROOT/tests/fuzz/corpus/$t
  work=$OUT/corpus/$t
  mkdir -p "$work" "$OUT/crashes/$t"
  dict=()
  [[ -f $ROOT/tests/fuzz/$t.dict ]] && dict=(-dict="$ROOT/tests/fuzz/$t.dict")
  log=$OUT/fuzz_$t.log
  if ((REPLAY_ONLY)); then
    echo "fuzz.sh: $t: replaying $(find "$seeds" -type f | wc -l) seeds"
    "$bin" "${dict[@]}" -runs=0 "$seeds" >"$log" 2>&1
  else
    echo "fuzz.sh: $t: replaying the seeds, then fuzzing for ${SECONDS_PER_TARGET} s"
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: the machine's share.
    "$bin" "${dict[@]}" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t/" "$work" "$seeds" >"$log" 2>&1
  fi
  rc=$?
  execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
  if ((rc != 0)); then
    failed=$((failed + 1))
    echo "fuzz.sh: $t FAILED (exit $rc); the end of its log:" >&2
    tail -n 40 "$log" >&2
    for a in "$OUT"/crashes/"$t"/*; do
      [[ -f $a ]] || continue
      echo "fuzz.sh: crashing input $a:" >&2
      od -An -tx1 -v "$a" | head -n 32 >&2
      echo "fuzz.sh: reproduce with: $bin $a" >&2
    done
  else
    passed=$((passed + 1))
    echo "fuzz.sh: $t ok (${execs:-?} executions, ${cov:-cov: ?})"
  fi
done
echo "fuzz: ${passed} passed, ${failed} failed"
((failed == 0))
