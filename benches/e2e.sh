#!/usr/bin/env bash
# End-to-end load: the paywall's cost per request next to bare servers and a peer layer.
#
#   bash benches/e2e.sh            # DURATION=10s CONNECTIONS=32 THREADS=1 ROUNDS=3 by default
#   ONLY="bare-axum quickstart-hs256 quickstart-redis" bash benches/e2e.sh   # a subset
#   ONLY="bare-axum bare-axum-served quickstart-hs256" bash benches/e2e.sh   # the quickstart's
#                                  # server (paywall_axum::serve) apart from its paywall
#   ONLY="bare-axum floor quickstart-hs256" bash benches/e2e.sh   # the quickstart against
#                                  # the floor: the least a metered paywall does per request
#   PIN=0 THREADS=2 CONNECTIONS=64 bash benches/e2e.sh   # the old unpinned method
#   USERS=2000 bash benches/e2e.sh   # the tokens of 2,000 users, round robin (wrk Lua script)
#   BEFORE=/tmp/base/target/release bash benches/e2e.sh   # also an earlier build's quickstarts
#   PROFILE=/tmp/profiles bash benches/e2e.sh   # and a perf profile of each target, by part
#   PACE_MS=2 CONNECTIONS=32 bash benches/e2e.sh   # the same offered load for every target
#   USERS=100000 WARMUP=30s bash benches/e2e.sh   # a warm-up long enough to see every user
#                                  # (the quickstarts get PAYWALL_MAX_CUSTOMERS=2×USERS)
#
# Builds the release binaries, installs wrk from Debian's packages if it is missing,
# starts each target on 127.0.0.1 and loads it with wrk, interleaving the targets round
# after round so drift affects all alike. Prints req/s, p50, p99 and max latency (medians
# over the rounds) and each target's ratio to its bare server. Everything stays on
# loopback and every server is stopped at the end.
#
# It also reports each server's CPU time per request: the process's utime + stime (all
# threads, from /proc/<pid>/stat) before and after each wrk run, divided by the requests
# served, and what a target adds to its bare server's in the same round (the median of
# the rounds' differences). Unlike req/s, this holds on a noisy machine.
#
# With USERS=N (N > 1) wrk sends the HS256 tokens of N users (`bench-tokens`) round robin
# through a Lua script, and every target is warmed with that script first, so that each
# user is known (customer, budget, verified token) before the measured runs. The RS256
# target keeps its one token.
#
# With BEFORE=<dir of release binaries> (an earlier commit built with `cargo build
# --release -p quickstart-axum -p quickstart-actix --bins`), that build's axum and actix
# quickstarts run too (quickstart-hs256-before, actix-quickstart-before), interleaved
# with the rest: a before/after comparison from one run.
#
# With PIN=1 (the default when the machine has two cores or more) every server under test
# runs on core 0 (`taskset -c 0`: one tokio worker, one actix worker, since both size
# themselves by the CPUs they may use) and wrk, the JWKS server and redis-server run on
# core 1: the load generator never competes with the server it measures.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
if [ "$(nproc)" -ge 2 ]; then PIN=${PIN:-1}; else PIN=0; fi
SERVER_CPU=()
LOAD_CPU=()
if [ "$PIN" = 1 ]; then
    SERVER_CPU=(taskset -c 0)
    LOAD_CPU=(taskset -c 1)
fi
ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-18080}

# shellcheck source=benches/need.sh
. benches/need.sh
need wrk
need redis-server

cargo build --release -q -p quickstart-axum -p quickstart-actix --bins
cargo build --release -q -p paywall-dev-server
BIN=target/release
LOGS=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

declare -A PID
start() { # name port env... binary  (servers under test: on the server core)
    local name=$1 port=$2; shift 2
    "${SERVER_CPU[@]}" env RUST_LOG=warn PORT="$port" "$@" >"$LOGS/$name.log" 2>&1 &
    PIDS+=($!)
    PID[$name]=$! # taskset and env exec: this is the server's own pid
    for _ in $(seq 1 100); do
        grep -q "listening on" "$LOGS/$name.log" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$name did not start:" >&2; cat "$LOGS/$name.log" >&2; exit 1
}

SECRET=bench-secret-bench-secret-bench-secret-0123456789
UNITS=1000000000
# The quickstarts keep every user warm: twice the users (at least the default 100,000)
# as customers and verified tokens, as an operator would size them (MAX_CUSTOMERS=n).
USERS=${USERS:-1}
export PAYWALL_MAX_CUSTOMERS=${MAX_CUSTOMERS:-$((USERS * 2 > 100000 ? USERS * 2 : 100000))}
SERVER_CPU_UNDER_TEST=("${SERVER_CPU[@]}")
SERVER_CPU=("${LOAD_CPU[@]}") # the JWKS server is a counterpart, not under test
start jwks $((BASE_PORT + 9)) "$BIN/bench-jwks"
SERVER_CPU=("${SERVER_CPU_UNDER_TEST[@]}")
RS_TOKEN=$(sed -n 's/^token: //p' "$LOGS/jwks.log")
JWKS_URL="http://127.0.0.1:$((BASE_PORT + 9))/jwks.json"

start bare-axum $((BASE_PORT + 1)) "$BIN/bench-bare-axum"
start quickstart-hs256 $((BASE_PORT + 2)) PAYWALL_JWT_SECRET=$SECRET PAYWALL_FREE_UNITS=$UNITS "$BIN/axum-quickstart"
start quickstart-rs256 $((BASE_PORT + 3)) PAYWALL_JWKS_URL=$JWKS_URL PAYWALL_JWT_ISSUER=bench-issuer \
    PAYWALL_JWT_AUDIENCE=bench-api PAYWALL_FREE_UNITS=$UNITS "$BIN/axum-quickstart"
start governor $((BASE_PORT + 4)) "$BIN/bench-governor"
start bare-actix $((BASE_PORT + 5)) "$BIN/bench-bare-actix"
start actix-quickstart $((BASE_PORT + 6)) PAYWALL_JWT_SECRET=$SECRET PAYWALL_FREE_UNITS=$UNITS "$BIN/actix-quickstart"
REDIS_PORT=$((BASE_PORT + 10))
"${LOAD_CPU[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$LOGS/redis.log" 2>&1 &
PIDS+=($!)
sleep 0.5
start quickstart-redis $((BASE_PORT + 7)) PAYWALL_JWT_SECRET=$SECRET PAYWALL_FREE_UNITS=$UNITS \
    PAYWALL_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/ "$BIN/axum-quickstart"
# A Redis Cluster of 3 primaries and 3 replicas, on the load core like redis-server.
CLUSTER_SEEDS=()
for i in 0 1 2 3 4 5; do
    port=$((BASE_PORT + 20 + i))
    "${LOAD_CPU[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --cluster-enabled yes --cluster-config-file "$LOGS/nodes-$port.conf" --dir "$LOGS" \
        >"$LOGS/cluster-$port.log" 2>&1 &
    PIDS+=($!)
    CLUSTER_SEEDS+=("127.0.0.1:$port")
done
sleep 0.5
redis-cli --cluster create "${CLUSTER_SEEDS[@]}" --cluster-replicas 1 --cluster-yes >"$LOGS/cluster-create.log" 2>&1
for _ in $(seq 1 100); do
    redis-cli -p $((BASE_PORT + 20)) cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
done
CLUSTER_URLS=$(printf 'redis://%s,' "${CLUSTER_SEEDS[@]}")
start quickstart-redis-cluster $((BASE_PORT + 12)) PAYWALL_JWT_SECRET=$SECRET PAYWALL_FREE_UNITS=$UNITS \
    PAYWALL_REDIS_CLUSTER_URLS="${CLUSTER_URLS%,}" "$BIN/axum-quickstart"
SERVER_CPU=("${LOAD_CPU[@]}") # the SolvaPay stand-in is a counterpart, not under test
start dev-server $((BASE_PORT + 11)) SOLVAPAY_SECRET_KEY=bench-key PAYWALL_FREE_UNITS=$UNITS "$BIN/paywall-dev-server"
SERVER_CPU=("${SERVER_CPU_UNDER_TEST[@]}")
start quickstart-solvapay $((BASE_PORT + 8)) PAYWALL_JWT_SECRET=$SECRET SOLVAPAY_SECRET_KEY=bench-key \
    SOLVAPAY_API_BASE_URL=http://127.0.0.1:$((BASE_PORT + 11)) "$BIN/axum-quickstart"
HS_TOKEN=$(grep -A1 'sample token' "$LOGS/quickstart-hs256.log" | tail -1 | tr -d ' ')

declare -A URL TOKEN
TARGETS=(bare-axum quickstart-hs256 quickstart-rs256 governor bare-actix actix-quickstart quickstart-redis
    quickstart-solvapay)
for i in "${!TARGETS[@]}"; do URL[${TARGETS[$i]}]="http://127.0.0.1:$((BASE_PORT + i + 1))/api/hello"; done
TOKEN[bare-axum]=$HS_TOKEN; TOKEN[quickstart-hs256]=$HS_TOKEN; TOKEN[quickstart-rs256]=$RS_TOKEN
TOKEN[governor]=$HS_TOKEN; TOKEN[bare-actix]=$HS_TOKEN; TOKEN[actix-quickstart]=$HS_TOKEN
TOKEN[quickstart-redis]=$HS_TOKEN; TOKEN[quickstart-solvapay]=$HS_TOKEN
TARGETS+=(quickstart-redis-cluster)
URL[quickstart-redis-cluster]="http://127.0.0.1:$((BASE_PORT + 12))/api/hello"
TOKEN[quickstart-redis-cluster]=$HS_TOKEN
# Bare axum served like the quickstart (`paywall_axum::serve` and its limits): the
# quickstart's added cost split into its server's and the paywall's.
start bare-axum-served $((BASE_PORT + 15)) BENCH_SERVE_LIMITS=1 "$BIN/bench-bare-axum"
TARGETS+=(bare-axum-served)
URL[bare-axum-served]="http://127.0.0.1:$((BASE_PORT + 15))/api/hello"
TOKEN[bare-axum-served]=$HS_TOKEN
# The floor (`bench-floor`): bare axum behind the least a metered paywall must do per
# request (a verified-token cache lookup, an atomic budget, x-customer-ref, the RateLimit
# fields, a usage counter drained once a second), written on the named dependencies.
start floor $((BASE_PORT + 16)) PAYWALL_JWT_SECRET=$SECRET PAYWALL_FREE_UNITS=$UNITS "$BIN/bench-floor"
TARGETS+=(floor)
URL[floor]="http://127.0.0.1:$((BASE_PORT + 16))/api/hello"
TOKEN[floor]=$HS_TOKEN
if [ -n "${BEFORE:-}" ]; then
    start quickstart-hs256-before $((BASE_PORT + 13)) PAYWALL_JWT_SECRET=$SECRET PAYWALL_FREE_UNITS=$UNITS "$BEFORE/axum-quickstart"
    start actix-quickstart-before $((BASE_PORT + 14)) PAYWALL_JWT_SECRET=$SECRET PAYWALL_FREE_UNITS=$UNITS "$BEFORE/actix-quickstart"
    URL[quickstart-hs256-before]="http://127.0.0.1:$((BASE_PORT + 13))/api/hello"
    URL[actix-quickstart-before]="http://127.0.0.1:$((BASE_PORT + 14))/api/hello"
    TOKEN[quickstart-hs256-before]=$HS_TOKEN
    TOKEN[actix-quickstart-before]=$HS_TOKEN
    TARGETS+=(quickstart-hs256-before actix-quickstart-before)
fi
if [ -n "${ONLY:-}" ]; then read -r -a TARGETS <<<"$ONLY"; fi
# Every target is compared with its framework's bare server: run that too.
for t in "${TARGETS[@]}"; do
    case $t in *actix*) base=bare-actix ;; *) base=bare-axum ;; esac
    if [[ " ${TARGETS[*]} " != *" $base "* ]]; then TARGETS=("$base" "${TARGETS[@]}"); fi
done

SCRIPT=()
if [ "$USERS" -gt 1 ]; then
    "$BIN/bench-tokens" "$SECRET" "$USERS" >"$LOGS/tokens.txt"
    cat >"$LOGS/users.lua" <<LUA
local tokens = {}
for line in io.lines("$LOGS/tokens.txt") do tokens[#tokens + 1] = "Bearer " .. line end
local i = 0
request = function()
    i = i % #tokens + 1
    return wrk.format(nil, nil, { ["Authorization"] = tokens[i] })
end
LUA
    SCRIPT=(-s "$LOGS/users.lua")
fi
# PACE_MS=n: every connection waits n ms between a response and its next request (wrk's
# delay()), so every target gets about the same offered load and wrk idles alike for all:
# a faster server no longer spares itself the kernel's wake-ups of an idle wrk.
PACE=()
if [ -n "${PACE_MS:-}" ]; then
    echo "delay = function() return $PACE_MS end" >"$LOGS/pace.lua"
    PACE=(-s "$LOGS/pace.lua")
    if [ "$USERS" -gt 1 ]; then echo "delay = function() return $PACE_MS end" >>"$LOGS/users.lua"; fi
fi
load() { # target duration [--latency]: wrk against the target, one user or USERS round robin
    local t=$1 d=$2; shift 2
    if [ "$USERS" -gt 1 ] && [ "$t" != quickstart-rs256 ]; then
        "${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$d" "$@" "${SCRIPT[@]}" "${URL[$t]}"
    else
        "${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$d" "$@" "${PACE[@]}" -H "Authorization: Bearer ${TOKEN[$t]}" "${URL[$t]}"
    fi
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# Warm every cache (customer, budget, JWKS, verified token) and check the answers.
for t in "${TARGETS[@]}"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN[$t]}" "${URL[$t]}")
    [ "$status" = 200 ] || { echo "$t answered $status" >&2; exit 1; }
    if [ "$USERS" -gt 1 ]; then
        # Every user seen before the measured runs: a first request is a new customer,
        # so with very many users give it longer (WARMUP=30s for 100,000 users).
        load "$t" "${WARMUP:-3s}" >/dev/null
    fi
done

to_ms() { # wrk latency (e.g. 812.00us, 1.20ms, 1.01s) in milliseconds
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

RESULTS="$LOGS/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        before=$(cpu_ticks "${PID[$t]}")
        out=$(load "$t" "$DURATION" --latency)
        after=$(cpu_ticks "${PID[$t]}")
        rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
        p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
        p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
        max=$(to_ms "$(echo "$out" | awk '$1 == "Latency" { print $4 }')")
        non2xx=$(echo "$out" | awk '/Non-2xx/ { print $NF }')
        total=$(echo "$out" | awk '/requests in/ { print $1 }')
        cpu=$(awk -v a="$after" -v b="$before" -v n="$total" -v hz="$TICK" 'BEGIN { printf "%.2f", (a - b) * 1e6 / hz / n }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$rps" "$p50" "$p99" "${non2xx:-0}" "$max" "$total" "$round" "$cpu" >>"$RESULTS"
        echo "round $round $t: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, max ${max} ms, non-2xx ${non2xx:-0}, CPU ${cpu} µs/req" >&2
    done
done

if [ -n "${PROFILE:-}" ]; then
    # One more run per target, not measured: `perf record -g` of the server (on the load
    # core) while wrk loads it, and the share of its samples by where they were taken.
    mkdir -p "$PROFILE"
    for t in "${TARGETS[@]}"; do
        "${LOAD_CPU[@]}" perf record -q -F 1999 -g -p "${PID[$t]}" -o "$PROFILE/$t.data" -- sleep 8 \
            >/dev/null 2>&1 &
        perf_pid=$!
        load "$t" 9s >/dev/null
        wait "$perf_pid" || true
        perf report -i "$PROFILE/$t.data" --no-children --sort dso,sym --percent-limit 0.3 --stdio \
            2>/dev/null | grep -v '^$' >"$PROFILE/$t.txt" || true
        python3 benches/profile_share.py "$PROFILE/$t.data" >"$PROFILE/$t.share" || true
        echo "profile of $t: $PROFILE/$t.txt, by part: $PROFILE/$t.share" >&2
    done
fi

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A RPS
echo
# Each round's ratio to the bare server measured in the same round, then their median:
# steadier than the ratio of the medians on a machine whose speed drifts.
round_ratio() { # target base
    awk -F'\t' -v t="$1" -v b="$2" '$1 == t { x[$8] = $2 } $1 == b { y[$8] = $2 }
        END { for (r in x) if (y[r] > 0) print 100 * x[r] / y[r] }' "$RESULTS" | median
}
# Each round's CPU per request minus the bare server's in the same round, then their median.
round_added() { # target base
    awk -F'\t' -v t="$1" -v b="$2" '$1 == t { x[$8] = $9 } $1 == b { y[$8] = $9 }
        END { for (r in x) if (r in y) print x[r] - y[r] }' "$RESULTS" | median
}
echo "| target | req/s | p50 ms | p99 ms | max ms | vs bare | vs bare, per round | CPU µs/req | added µs/req |"
echo "|---|---|---|---|---|---|---|---|---|"
for t in "${TARGETS[@]}"; do
    RPS[$t]=$(awk -F'\t' -v t="$t" '$1 == t { print $2 }' "$RESULTS" | median)
    p50=$(awk -F'\t' -v t="$t" '$1 == t { print $3 }' "$RESULTS" | median)
    p99=$(awk -F'\t' -v t="$t" '$1 == t { print $4 }' "$RESULTS" | median)
    max=$(awk -F'\t' -v t="$t" '$1 == t { print $6 }' "$RESULTS" | median)
    case $t in *actix*) base=bare-actix ;; *) base=bare-axum ;; esac
    ratio=$(awk -v a="${RPS[$t]}" -v b="${RPS[$base]}" 'BEGIN { printf "%.1f %%", 100 * a / b }')
    per_round=$(printf '%.1f %%' "$(round_ratio "$t" "$base")")
    cpu=$(awk -F'\t' -v t="$t" '$1 == t { print $9 }' "$RESULTS" | median)
    added=$(printf '%+.2f' "$(round_added "$t" "$base")")
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %.2f | %s |\n' "$t" "${RPS[$t]}" "$p50" "$p99" "$max" "$ratio" "$per_round" "$cpu" "$added"
done
if [[ " ${TARGETS[*]} " == *" floor "* && " ${TARGETS[*]} " == *" quickstart-hs256 "* ]]; then
    # What the quickstart's paywall adds over the least a metered paywall does.
    echo
    printf 'quickstart-hs256 over the floor: %+.2f µs/req (median of the rounds; the floor adds %+.2f over bare axum)\n' \
        "$(round_added quickstart-hs256 floor)" "$(round_added floor bare-axum)"
fi
if [[ " ${TARGETS[*]} " == *" quickstart-redis "* && " ${TARGETS[*]} " == *" quickstart-hs256 "* ]]; then
    # Target 4 of the benchmarks: budgets shared through Redis against local budgets.
    echo
    awk -v r="${RPS[quickstart-redis]}" -v l="${RPS[quickstart-hs256]}" -v p="$(round_ratio quickstart-redis quickstart-hs256)" \
        'BEGIN { printf "quickstart-redis vs quickstart-hs256 (local budgets): %.1f %% (per round: %.1f %%)\n", 100 * r / l, p }'
fi
if [[ " ${TARGETS[*]} " == *" quickstart-redis-cluster "* && " ${TARGETS[*]} " == *" quickstart-hs256 "* ]]; then
    # Budgets shared through a Redis Cluster against local budgets (and against one Redis).
    awk -v r="${RPS[quickstart-redis-cluster]}" -v l="${RPS[quickstart-hs256]}" -v p="$(round_ratio quickstart-redis-cluster quickstart-hs256)" \
        'BEGIN { printf "quickstart-redis-cluster vs quickstart-hs256 (local budgets): %.1f %% (per round: %.1f %%)\n", 100 * r / l, p }'
    if [[ " ${TARGETS[*]} " == *" quickstart-redis "* ]]; then
        awk -v r="${RPS[quickstart-redis-cluster]}" -v l="${RPS[quickstart-redis]}" \
            'BEGIN { printf "quickstart-redis-cluster vs quickstart-redis (one Redis): %.1f %%\n", 100 * r / l }'
    fi
fi
if [[ " ${TARGETS[*]} " == *" quickstart-solvapay "* ]]; then
    # Backend calls per 1,000 requests through SolvaPay's API (the dev server), from the
    # quickstart's own Prometheus counters; the warm-up request counts as one more.
    served=$(awk -F'\t' '$1 == "quickstart-solvapay" { n += $7 } END { print n + 1 }' "$RESULTS")
    calls=$(curl -s "${URL[quickstart-solvapay]%/api/hello}/metrics" |
        awk '/^paywall_backend_calls_total/ { n += $NF } END { print n + 0 }')
    echo
    awk -v c="$calls" -v s="$served" 'BEGIN { printf "quickstart-solvapay: %d backend calls for %d requests, %.2f per 1,000\n", c, s, 1000 * c / s }'
fi
echo
if [ "$PIN" = 1 ]; then
    where="server pinned to core 0, wrk (and redis-server, the JWKS server) to core 1"
else
    where="$(nproc) cores shared by wrk and the server"
fi
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS interleaved rounds, medians, $USERS user(s) round robin; $where; $(lscpu | sed -n 's/^Model name: *//p')"
