/**
 * Puts a new binary at the live path without the live path ever holding a partial file: upload
 * to a staging file beside it, check its sha256 on the host (stage), then make it executable,
 * keep the old file as a hard link and rename it into place (swap). Undo renames the kept file back.
 */
import { randomBytes } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { posix } from 'node:path'
import { check, type ExecResult, type Host, type UploadProgress } from '../../host/host.js'
import { GATE_CLOSED } from '../../host/remote-shell.js'
import { remoteLine } from '../../remote-text.js'

/** Paths beside the live binary that an install uses; fixed names so pre-flight can find leftovers. */
export function sidePaths(livePath: string): { staging: string; previous: string } {
  const dir = posix.dirname(livePath)
  const base = posix.basename(livePath)
  return {
    staging: posix.join(dir, `.${base}.zerodown-new`),
    previous: posix.join(dir, `.${base}.zerodown-prev`)
  }
}

/**
 * A plan's staging file: its own name per run, so that a plan never touches the staging file of a
 * deploy running at the same time (a plan takes no lock).
 */
export function planStagingPath(livePath: string, token: string): string {
  const dir = posix.dirname(livePath)
  return posix.join(dir, `.${posix.basename(livePath)}.zerodown-plan-${token}`)
}

/**
 * $1 the live binary: removes the staging files of plans beside it that nobody wrote to for an
 * hour (a plan killed outright leaves its own; a plan at work writes or reads its file within
 * seconds), regular files only, and names each one removed.
 */
export const PLAN_LEFTOVERS = String.raw`
d=@{1%/*}; d=@{d:-/}; b=@{1##*/}; now=$(date +%s)
for f in "$d"/."$b".zerodown-plan-*; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  m=$(stat -c %Y -- "$f" 2>/dev/null) || continue
  [ $((now - m)) -gt 3600 ] && rm -f -- "$f" && echo "$f"
done
exit 0
`.replaceAll('@{', '${')

/** sha256 of a remote file, or null when it does not exist. */
export async function remoteSha256(host: Host, path: string): Promise<string | null> {
  const r = await host.run(['sha256sum', '--', path], { sudo: host.sudo })
  if (r.code !== 0) {
    if (/No such file/.test(r.stderr)) return null
    check(host, ['sha256sum', path], r)
  }
  return r.stdout.trim().split(/\s+/)[0] ?? null
}

export interface StageResult {
  /** false when the staging file already held this exact binary (an earlier run sent it). */
  sent: boolean
  bytes: number
  uploadMs: number
}

/** Uploads the binary to the staging file beside the live path and checks its sha256 there. */
export async function stageBinary(
  host: Host,
  o: {
    localPath: string
    sha256: string
    livePath: string
    onProgress?: (p: UploadProgress) => void
    /** Another staging file than the deploy's (a plan's). */
    staging?: string
    /** The staging file's sha256 read earlier under the same lock (undefined: read it now). */
    staged?: Promise<string | null | undefined>
    /** Called once the upload is under way (not through sudo's copy): what may follow it on the host. */
    sending?: () => void
  }
): Promise<StageResult> {
  const staging = o.staging ?? sidePaths(o.livePath).staging
  const sudo = host.sudo
  const bytes = (await stat(o.localPath)).size
  const known = await o.staged
  const now = known !== undefined ? known : await remoteSha256(host, staging)
  if (now === o.sha256) return { sent: false, bytes, uploadMs: 0 }
  const started = Date.now()
  let landed: string | null = null
  try {
    if (sudo) {
      // The upload writes as the SSH user; a root-owned folder is reached by a privileged copy. The name
      // in /tmp is unpredictable, and the partial file goes on every path (a full /tmp included).
      const tmp = `/tmp/zerodown-upload-${randomBytes(8).toString('hex')}`
      try {
        await host.upload(o.localPath, tmp, o.onProgress)
        // rm first: cp onto an existing name would write through a symlink planted there.
        await run(host, ['rm', '-f', '--', staging])
        const [copied] = await Promise.all([
          host.run(['cp', '--', tmp, staging], { sudo, timeoutMs: 120_000 }),
          host.run(['rm', '-f', '--', tmp])
        ])
        check(host, ['cp', '--', tmp, staging], copied)
      } catch (e) {
        // The rm issued with the copy did not run, or the upload failed part way.
        await host.run(['rm', '-f', '--', tmp]).catch(() => undefined)
        throw e
      }
    } else {
      const uploading = host.upload(o.localPath, staging, o.onProgress)
      o.sending?.()
      landed = await uploading.catch((e: Error) => {
        // The host says only "Permission denied": name the folder and the two ways out.
        if (!/permission denied/i.test(e.message)) throw e
        const msg = `${host.name}: cannot write the staging file ${staging}: the SSH user may not write in ${posix.dirname(staging)}, the folder of binary-path. Nothing was changed. Give the folder to the deploy user (chown), or set sudo: true`
        throw new Error(msg)
      })
    }
    const uploadMs = Date.now() - started
    // The upload made its own file executable and said its sha256. After a privileged copy (or a
    // host without sha256sum for the SSH user) the check and the chmod go together (one round
    // trip), so that verify can run its config test; a file that fails the check is removed below.
    const [got] =
      typeof landed === 'string'
        ? [landed]
        : await Promise.all([remoteSha256(host, staging), run(host, ['chmod', '0755', '--', staging])])
    if (got !== o.sha256)
      throw new Error(
        `${host.name}: the uploaded file's sha256 is ${got}, expected ${o.sha256}: the transfer was corrupted`
      )
    return { sent: true, bytes, uploadMs }
  } catch (e) {
    await host.run(['rm', '-f', '--', staging], { sudo }).catch(() => undefined)
    throw e
  }
}

/**
 * Copies a file that is already on the host (a release from its store) to the staging file
 * beside the live path and checks its sha256 there: nothing is sent.
 */
export async function stageHostFile(
  host: Host,
  o: { fromPath: string; sha256: string; livePath: string; staging?: string }
): Promise<void> {
  const staging = o.staging ?? sidePaths(o.livePath).staging
  try {
    // rm first: cp onto an existing file writes into its inode, which another name may share.
    await run(host, ['rm', '-f', '--', staging])
    // The copy, its check and its mode in one round trip: a copy that fails the check is removed below.
    const cp = ['cp', '--', o.fromPath, staging]
    const chmod = ['chmod', '0755', '--', staging]
    const opts = { sudo: host.sudo, timeoutMs: 120_000 }
    const [copied, got, moded] = await Promise.all([
      host.run(cp, opts),
      remoteSha256(host, staging),
      host.run(chmod, opts)
    ])
    check(host, cp, copied)
    if (got !== o.sha256)
      throw new Error(
        `${host.name}: the copy of ${o.fromPath} has sha256 ${got}, expected ${o.sha256}: the file is corrupted; it is not used`
      )
    check(host, chmod, moded)
  } catch (e) {
    await host.run(['rm', '-f', '--', staging], { sudo: host.sudo }).catch(() => undefined)
    throw e
  }
}

async function run(host: Host, argv: string[]): Promise<void> {
  check(host, argv, await host.run(argv, { sudo: host.sudo, timeoutMs: 120_000 }))
}

/**
 * The swap on the host, in one round trip: the staged file's sha256 checked, the live file kept
 * as a hard link, the staged file renamed in. Exit 3: the staged file is not the one checked (it
 * prints what it holds); 4: the link failed; 5: the rename failed (the link stays for the undo).
 */
export const SWAP = String.raw`
h=$(sha256sum -- "$1" 2>/dev/null) || h=
h=@{h%% *}
[ "$h" = "$2" ] || { echo "@{h:-none}"; exit 3; }
ln -f -- "$3" "$4" || exit 4
mv -f -- "$1" "$3" || exit 5
`.replaceAll('@{', '${')

/**
 * The staged file takes the live path with one rename, after the live file is kept as a hard
 * link (same inode, so the running master's file is what a rollback puts back). One round trip
 * (SWAP); through the sudo helper, which runs fixed commands only, two.
 */
export async function swapBinary(
  host: Host,
  livePath: string,
  sha256: string,
  early?: Promise<ExecResult>
): Promise<void> {
  if (host.privileged) return swapInSteps(host, livePath, sha256)
  const { staging, previous } = sidePaths(livePath)
  const argv = swapArgv(livePath, sha256)
  // Sent ahead behind a gate (sendSwap): sent again when the gate was closed. A lost answer fails
  // the step as a lost connection does: it runs again, reading the host back first.
  const ahead = early ? await early : null
  const r =
    ahead && ahead.code !== GATE_CLOSED
      ? ahead
      : await host.run(argv, { sudo: host.sudo, timeoutMs: 120_000 })
  if (r.code === 3)
    throw new Error(
      `${host.name}: the staged file ${staging} is missing or changed (sha256 ${remoteLine(r.stdout.trim(), 80)})`
    )
  const what = r.code === 4 ? ['ln', '-f', '--', livePath, previous] : ['mv', '-f', '--', staging, livePath]
  if (r.code !== 0) check(host, what, r)
}

const swapArgv = (livePath: string, sha256: string) => {
  const { staging, previous } = sidePaths(livePath)
  return ['sh', '-c', SWAP, 'sh', staging, sha256, livePath, previous]
}

/** The gate a swap sent ahead opens when the staged file took the live path: the start sent behind it needs it. */
export const SWAPPED_GATE = 'swapped'

/**
 * The swap sent now, run by the host only if `gate` is open on its shell (the watchdog started);
 * swapBinary takes its answer. Null through the sudo helper, which swaps in two commands.
 */
export function sendSwap(
  host: Host,
  livePath: string,
  sha256: string,
  gate: string
): Promise<ExecResult> | null {
  if (host.privileged) return null
  const sent = host.run(swapArgv(livePath, sha256), {
    sudo: host.sudo,
    timeoutMs: 120_000,
    gate: { need: gate, set: SWAPPED_GATE }
  })
  sent.catch(() => undefined) // taken by the swap step, or never when the watchdog did not start
  return sent
}

async function swapInSteps(host: Host, livePath: string, sha256: string): Promise<void> {
  const { staging, previous } = sidePaths(livePath)
  // The check and the kept link together (one round trip): the link alone changes nothing live.
  const [staged] = await Promise.all([
    remoteSha256(host, staging),
    run(host, ['ln', '-f', '--', livePath, previous])
  ])
  if (staged !== sha256) {
    await host.run(['rm', '-f', '--', previous], { sudo: host.sudo }).catch(() => undefined)
    throw new Error(`${host.name}: the staged file ${staging} is missing or changed (sha256 ${staged})`)
  }
  await run(host, ['mv', '-f', '--', staging, livePath])
}

/** Undo of swapBinary: the kept file takes the live path back with one rename. */
export async function restorePrevious(host: Host, livePath: string, previousSha256: string): Promise<void> {
  const { previous } = sidePaths(livePath)
  const kept = await remoteSha256(host, previous)
  if (kept !== previousSha256) {
    const live = await remoteSha256(host, livePath)
    if (live === previousSha256) return // already restored
    throw new Error(
      `${host.name}: the kept binary ${previous} is missing or changed (sha256 ${kept}); cannot restore ${livePath}`
    )
  }
  const argv = ['mv', '-f', '--', previous, livePath]
  check(host, argv, await host.run(argv, { sudo: host.sudo }))
}
