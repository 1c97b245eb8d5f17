#!/usr/bin/env bash
# Instructions per warm request, counted by Valgrind's callgrind: a measure of the
# paywall's in-process cost that does not move with the machine's noise (timings on a
# shared VM do, by more than the changes they are asked to show).
#
#   bash benches/instructions.sh                  # this build: bare, hs256, quickstart
#   BEFORE=/tmp/instructions-before bash benches/instructions.sh
#                                  # and an earlier build's binary, side by side (make it
#                                  # with `cargo bench -p paywall-benches --bench
#                                  # instructions --no-run` there and copy the executable)
#   N1=2000 N2=12000 bash benches/instructions.sh   # the two request counts (defaults)
#
# Each path runs twice under callgrind, N1 and N2 requests; (I(N2) - I(N1)) / (N2 - N1)
# is its instructions per request, start-up and warm-up cancelled out. Installs
# valgrind from Debian's packages if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

N1=${N1:-2000}
N2=${N2:-12000}

# shellcheck source=benches/need.sh
. benches/need.sh
need valgrind

THIS=$(cargo bench -q -p paywall-benches --bench instructions --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
if [ -z "$THIS" ]; then
    echo "instructions: cannot build the bench" >&2
    exit 1
fi

collected() { # binary path requests
    PATH_NAME=$2 REQUESTS=$3 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

per_request() { # binary path
    local one two
    one=$(collected "$1" "$2" "$N1")
    two=$(collected "$1" "$2" "$N2")
    awk -v a="$one" -v b="$two" -v n="$((N2 - N1))" 'BEGIN { printf "%.0f", (b - a) / n }'
}

BUILDS=("this:$THIS")
if [ -n "${BEFORE:-}" ]; then
    BUILDS+=("before:$BEFORE")
fi

echo "| build | path | instructions per request | over bare |"
echo "|---|---|---|---|"
for entry in "${BUILDS[@]}"; do
    name=${entry%%:*}
    bin=${entry#*:}
    bare=$(per_request "$bin" bare)
    echo "| $name | bare (the handler alone) | $bare | |"
    for path in hs256 quickstart; do
        count=$(per_request "$bin" "$path")
        echo "| $name | $path | $count | +$((count - bare)) |"
    done
done
echo
echo "callgrind, $N1 and $N2 warm requests per run, one user, current-thread runtime"
