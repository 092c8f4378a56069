/**
 * The verify sent ahead, behind the upload: the upload writes the staging file on a channel of
 * its own, so the host's shell cannot know when it ends; STAGED_WAIT waits there until the file
 * is whole (the upload makes it executable last) and has the binary's sha256, and opens
 * STAGED_GATE. The supervisor's config test, sent right behind it and needing that gate, then
 * runs without waiting for the runner to hear the upload's end: one round trip saved. When the
 * wait gives up (the upload failed or never came, or took longer than it waits), the gate stays
 * closed and the verify sends its commands once the upload's answer came, as before.
 */
import type { Host } from '../../host/host.js'

/** The gate STAGED_WAIT opens when the staging file holds the binary. */
export const STAGED_GATE = 'staged'

/**
 * $1 the staging file, $2 its sha256. Exits 0 once the file is executable (the upload's last
 * change: it writes it 0600, and removes it when it cannot write it whole) with that sha256, hashed
 * once each time it becomes so. Exits 1 when it stays executable with another sha256 for 2 s (a
 * stale file the upload did not replace, or a corrupted one), when it is missing for 2 s (the
 * upload failed, or has not begun), or after 60 s in all: the shell is not held longer, and the
 * verify then waits for the upload's answer. Polls with builtins only (sleep aside), every 10 ms
 * for the first 200 ms (a small file lands at once), then every 50 ms: a host with many waits at
 * once stays light.
 */
export const STAGED_WAIT = String.raw`
hashed=; idle=0; t=0; d=0.01; ms=10
while [ $t -lt 60000 ] && [ $idle -lt 2000 ]; do
  if [ -f "$1" ] && [ -x "$1" ]; then
    if [ -z "$hashed" ]; then
      h=$(sha256sum < "$1" 2>/dev/null) && [ "@{h%% *}" = "$2" ] && exit 0
      hashed=1; idle=0
    else
      idle=$((idle + ms))
    fi
  elif [ -e "$1" ]; then
    hashed=; idle=0
  else
    hashed=; idle=$((idle + ms))
  fi
  sleep $d 2>/dev/null || exit 1
  t=$((t + ms))
  [ $t -ge 200 ] && d=0.05 && ms=50
done
exit 1
`.replaceAll('@{', '${')

/**
 * Sends the wait (as the SSH user, who writes the file; not with sudo, whose upload copies it in
 * a command of its own) and lets `then` send what needs its gate. Its answer is not needed: the
 * commands behind it say whether the gate opened.
 */
export function sendStagedWait(
  host: Host,
  staging: string,
  sha256: string,
  then: (gate: string) => void
): void {
  if (host.sudo) return
  host
    .run(['sh', '-c', STAGED_WAIT, 'sh', staging, sha256], { timeoutMs: 120_000, gate: { set: STAGED_GATE } })
    .catch(() => undefined)
  then(STAGED_GATE)
}
