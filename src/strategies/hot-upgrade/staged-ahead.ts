/**
 * The verify sent ahead, behind the upload: the upload writes the staging file on a channel of
 * its own, so the host's shell cannot know when it ends; STAGED_WAIT waits there until the file
 * is whole (the upload makes it executable last) and has the binary's sha256, and opens
 * STAGED_GATE. The supervisor's config test, sent right behind it and needing that gate, then
 * runs without waiting for the runner to hear the upload's end: one round trip saved. When the
 * wait gives up (the upload stalled or failed, or took longer than it waits), the gate stays
 * closed and the verify sends its commands once the upload's answer came, as before.
 */
import type { Host } from '../../host/host.js'

/** The gate STAGED_WAIT opens when the staging file holds the binary. */
export const STAGED_GATE = 'staged'

/**
 * $1 the staging file, $2 its sha256. Polls the file's identity (inode, time, size, mode): hashes
 * it once whenever it is executable and changed since; exits 0 on the right sha256. Exits 1 after
 * 2 s without any change (no upload is writing it: failed, stalled, or never started) or 60 s in
 * all (the shell is not held longer: the verify then waits for the upload's answer).
 */
export const STAGED_WAIT = String.raw`
seen=; idle=0; n=0
while [ $n -lt 2400 ] && [ $idle -lt 80 ]; do
  id=$(stat -c '%i %Y %s %a' -- "$1" 2>/dev/null) || id=
  if [ -z "$id" ] || [ "$id" = "$seen" ]; then
    idle=$((idle + 1))
  else
    idle=0
    seen=$id
    if [ -x "$1" ]; then
      h=$(sha256sum < "$1" 2>/dev/null) && [ "@{h%% *}" = "$2" ] && exit 0
    fi
  fi
  sleep 0.025 2>/dev/null || exit 1
  n=$((n + 1))
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
