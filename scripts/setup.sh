#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine, and nothing when it is all there:
# Debian packages (sshd, nginx, haproxy, wrk, sudo, python3, Go and tableflip) when run as root, and the npm packages of package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v sudo >/dev/null 2>&1 || need+=(sudo)
command -v unshare >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3) # a subreaper in one test
[ -x /usr/sbin/haproxy ] || need+=(haproxy)                # the HAProxy supervisor's tests
# The Go test server of the tableflip supervisor, built in GOPATH mode from Debian's packages.
command -v go >/dev/null 2>&1 || [ -x /usr/lib/go/bin/go ] || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/cloudflare/tableflip ] || need+=(golang-github-cloudflare-tableflip-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need[*]} (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing ${need[*]}. Install them as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

# npm packages: install when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi
