#!/usr/bin/env bash
# Regenerates docs/fork-behaviour.md with one command: pinring-forkcheck's matrix and cost sweep
# on the host (io_uring), then in soft-RoCE guests booted from Debian's 6.1, 6.12 and newest 7.x
# kernels (verbs and io_uring; deploy/softroce/pinring-rxe), then scripts/render-fork-report.py,
# which puts the kernels side by side and explains every cell that differs between them.
#
# Usage: scripts/fork-report.sh [--build DIR] [--kernels "6.1 6.12 7"] [--quick]
#   --build DIR   the build tree holding tools/forkcheck/pinring-forkcheck (default: build)
#   --kernels     guest kernels to run (pinring-rxe --kernel values; 6.1 is the installed one)
#   --quick       forkcheck --quick everywhere (seconds per kernel; costs up to 16 MiB only)
# Writes docs/fork-data/{host,guest-<kernel>}.{json,txt}, docs/img/fork-latency-*.png (with
# gnuplot) and docs/fork-behaviour.md. Needs what deploy/softroce/pinring-rxe needs (QEMU, and the
# network once to fetch the 6.12 and 7.x kernels; they are cached).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build
KERNELS="6.1 6.12 7"
QUICK=()
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --build) BUILD=$2; shift ;;
    --build=*) BUILD=${1#*=} ;;
    --kernels) KERNELS=$2; shift ;;
    --kernels=*) KERNELS=${1#*=} ;;
    --quick) QUICK=(--quick) ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fork-report: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
FC=$PWD/$BUILD/tools/forkcheck/pinring-forkcheck
if [[ ! -x $FC ]]; then
  echo "fork-report: $FC is missing: build first (cmake -S . -B $BUILD -G Ninja && ninja -C $BUILD)" >&2
  exit 1
fi
mkdir -p docs/fork-data
t0=$SECONDS
echo "fork-report: host, Linux $(uname -r) ..."
"$FC" --label=host "${QUICK[@]}" --json=docs/fork-data/host.json >docs/fork-data/host.txt
echo "fork-report: host done in $((SECONDS - t0)) s"
for k in $KERNELS; do
  t=$SECONDS
  echo "fork-report: guest kernel $k ..."
  kernel=()
  [[ $k == 6.1 ]] || kernel=(--kernel="$k")
  # The guest is a throwaway kernel, root may change it: huge pages for the hugetlb row, and a
  # RAM disk (brd) formatted ext4 for the file-backed scenarios (the guest's root is 9p).
  deploy/softroce/pinring-rxe run "${kernel[@]}" --timeout 3600 --rw "$PWD/docs" --rw "$PWD/$BUILD" -- \
    sh -c 'echo 64 > /proc/sys/vm/nr_hugepages &&
           modprobe brd rd_nr=1 rd_size=65536 && mkfs.ext4 -q /dev/ram0 &&
           mkdir -p /run/pinring-ext4 && mount /dev/ram0 /run/pinring-ext4 &&
           exec "$@" --file_dir=/run/pinring-ext4' sh \
    "$FC" --label="$k" --max_size_mib=64 --reps=5 "${QUICK[@]}" \
    --json="$PWD/docs/fork-data/guest-$k.json" >"docs/fork-data/guest-$k.txt"
  echo "fork-report: guest kernel $k done in $((SECONDS - t)) s"
done
runs=(--run "host=docs/fork-data/host.json")
for k in $KERNELS; do runs+=(--run "$k=docs/fork-data/guest-$k.json"); done
scripts/render-fork-report.py "${runs[@]}"
echo "fork-report: all done in $((SECONDS - t0)) s"
