/** The deploy lock's sh scripts (see lock.ts): every value comes in as a positional parameter. */

export const ACQUIRE = String.raw`
d=$1 tok=$2 lease=$3; shift 3
parent=@{d%/*}; [ -n "$parent" ] || parent=/
mkdir -p -- "$parent" 2>/dev/null || { echo "error cannot create $parent: $(mkdir -p -- "$parent" 2>&1)"; exit 0; }
owner_of() { sed -n 's/^token=//p' "$1/owner" 2>/dev/null; }
take() {
  { printf 'token=%s\nlease=%s\nsince=%s\n' "$tok" "$lease" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for kv in "$@"; do printf '%s\n' "$kv"; done; } > "$d/owner.tmp" && mv -f -- "$d/owner.tmp" "$d/owner"
}
show() {
  now=$(date +%s)
  m=$(stat -c %Y -- "$d/owner" 2>/dev/null || stat -c %Y -- "$d" 2>/dev/null || echo "$now")
  echo "age=$((now - m))"
  cat -- "$d/owner" 2>/dev/null | head -n 40
}
expired() {
  now=$(date +%s)
  m=$(stat -c %Y -- "$d/owner" 2>/dev/null || stat -c %Y -- "$d" 2>/dev/null || echo "$now")
  l=$(sed -n 's/^lease=//p' "$d/owner" 2>/dev/null); case $l in ''|*[!0-9]*) l=$lease;; esac
  [ $((now - m)) -gt "$l" ]
}
if mkdir -- "$d" 2>/dev/null; then take "$@" && echo acquired && exit 0; rmdir -- "$d"; echo "error cannot write $d/owner"; exit 0; fi
[ -d "$d" ] || { echo "error $d exists and is not a directory"; exit 0; }
cur=$(owner_of "$d")
if [ -n "$cur" ] && [ "$cur" = "$tok" ]; then touch -- "$d/owner"; echo ours; exit 0; fi
now=$(date +%s)
m=$(stat -c %Y -- "$d/owner" 2>/dev/null || stat -c %Y -- "$d" 2>/dev/null || echo "$now")
if [ "$m" -gt "$now" ]; then
  # Renewed "in the future": the host's clock was set back since (or the time was set by hand), so
  # the lease's age cannot be told and it would never run out. Date it to the host's clock now:
  # a live holder renews it anyway; a gone one loses it one lease from now.
  r=not-redated
  if [ -f "$d/owner" ] && [ "$(owner_of "$d")" = "$cur" ] && touch -c -- "$d/owner" 2>/dev/null; then r=redated; fi
  echo "held-future $r"; echo "age=$((now - m))"; cat -- "$d/owner" 2>/dev/null | head -n 40
  exit 0
fi
if expired; then
  # Take over under a short mutex, so that two runs cannot both take over the same stale lock.
  if [ -d "$d.takeover" ] && [ $(( $(date +%s) - $(stat -c %Y -- "$d.takeover" 2>/dev/null || date +%s) )) -gt 60 ]; then rmdir -- "$d.takeover" 2>/dev/null; fi
  if mkdir -- "$d.takeover" 2>/dev/null; then
    if [ "$(owner_of "$d")" = "$cur" ] && expired; then
      echo "took-over"; show
      rm -f -- "$d/owner" "$d/owner.tmp"; rmdir -- "$d" 2>/dev/null
      if mkdir -- "$d" 2>/dev/null && take "$@"; then rmdir -- "$d.takeover"; exit 0; fi
      rmdir -- "$d.takeover"; echo "error could not take over $d"; exit 0
    fi
    rmdir -- "$d.takeover"
  fi
fi
echo held; show
`.replaceAll('@{', '${')

// $1 lock dir, $2 token. When the lock is in other hands: `lost`, then its owner file.
export const RENEW = String.raw`
[ "$(sed -n 's/^token=//p' "$1/owner" 2>/dev/null)" = "$2" ] || { echo lost; cat -- "$1/owner" 2>/dev/null | head -n 40; exit 0; }
touch -c -- "$1/owner" && echo renewed
`
export const RELEASE = String.raw`
[ -d "$1" ] || { echo absent; exit 0; }
[ "$(sed -n 's/^token=//p' "$1/owner" 2>/dev/null)" = "$2" ] || { echo not-ours; exit 0; }
rm -f -- "$1/owner" "$1/owner.tmp" && rmdir -- "$1" && echo released
`
export const INSPECT = String.raw`
[ -d "$1" ] || { echo absent; exit 0; }
now=$(date +%s)
m=$(stat -c %Y -- "$1/owner" 2>/dev/null || stat -c %Y -- "$1" 2>/dev/null || echo "$now")
echo "age=$((now - m))"
cat -- "$1/owner" 2>/dev/null | head -n 40
`
