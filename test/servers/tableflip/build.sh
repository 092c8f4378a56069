#!/usr/bin/env bash
# Builds the Go test server of the tableflip supervisor (main.go beside this file) in its variants,
# from Debian's golang-go and golang-github-cloudflare-tableflip-dev in GOPATH mode: nothing is
# downloaded. Prints the folder that holds the binaries:
#
#   app-1.0.0  app-2.0.0  app-3.0.0   working versions
#   app-exit        exits at once, before it is ready     (version 9.0.0-exit)
#   app-unhealthy   /health answers 500                    (version 9.0.0-unhealthy)
#   app-hang        takes the sockets, never becomes ready (version 9.0.0-hang)
#
# The folder is ${ZERODOWN_GO_CACHE:-<repo>/.cache/tableflip}/<hash of the sources and toolchain>:
# a second call with nothing changed builds nothing. Binaries are never committed.
set -euo pipefail
export PATH="/usr/local/bin:/usr/bin:/bin${PATH:+:$PATH}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
gopath=/usr/share/gocode
lib=$gopath/src/github.com/cloudflare/tableflip

die() {
  printf 'build.sh: %s\n' "$*" >&2
  exit 1
}
command -v go >/dev/null 2>&1 || die "go is missing: apt-get install golang-go (scripts/setup.sh does)"
[[ -d $lib ]] || die "$lib is missing: apt-get install golang-github-cloudflare-tableflip-dev (scripts/setup.sh does)"

key=$(
  {
    cat "$here/main.go" "$here/build.sh"
    go version
    cat "$lib"/*.go
  } | sha256sum | cut -c1-16
)
cache=${ZERODOWN_GO_CACHE:-$repo/.cache/tableflip}
out=$cache/$key
variants=("1.0.0:" "2.0.0:" "3.0.0:" "9.0.0-exit:exit" "9.0.0-unhealthy:unhealthy" "9.0.0-hang:hang")

built() {
  [[ -f $out/.complete ]]
}

if ! built; then
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock -w 300 9 || die "could not take $cache/.lock"
  if ! built; then
    tmp=$(mktemp -d "$cache/.build.XXXXXX")
    # shellcheck disable=SC2064 # expand now: the trap must remove this build's folder
    trap "rm -rf '$tmp'" EXIT
    export GO111MODULE=off GOPATH=$gopath GOCACHE=$cache/.gocache CGO_ENABLED=0
    for v in "${variants[@]}"; do
      ver=${v%%:*}
      mode=${v#*:}
      name=app-${mode:-$ver}
      (cd "$here" && go build -trimpath -o "$tmp/$name" -ldflags "-X main.version=$ver -X main.mode=$mode" .) ||
        die "go build of $name failed"
    done
    chmod 0755 "$tmp" "$tmp"/app-*
    : >"$tmp/.complete"
    rm -rf "$out"
    mv "$tmp" "$out"
    trap - EXIT
    # Builds of older sources are of no use any more.
    find "$cache" -mindepth 1 -maxdepth 1 -type d -not -name .gocache -not -path "$out" -exec rm -rf {} +
    printf 'build.sh: built %s\n' "$out" >&2
  fi
fi
printf '%s\n' "$out"
