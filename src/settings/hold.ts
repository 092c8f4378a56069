/**
 * The inputs of a fleet sharded over a workflow matrix: `shard` (which slice of hosts this job
 * runs on), `hold` (leave each host's old process held instead of committing) and `hold-timeout`
 * (when a held host's watchdog rolls it back by itself), and the modes `commit` and `abort` that
 * finish held hosts. Parsed here, not in settings.ts; refusals name the input and the fix.
 */
import { formatDuration, parseDuration } from '../duration.js'
import { parseShard, shardOf, type Shard } from '../fleet/shard.js'
import { SettingsError, type HostTarget } from '../settings.js'
import type { Mode } from './modes.js'

export interface HoldSettings {
  /** This job's slice of hosts (hosts is already that slice). */
  shard?: Shard
  /** Leave every host held after its drain (mode deploy). */
  hold: boolean
  /** How long a held host waits for mode commit or abort before its watchdog rolls it back. */
  holdTimeoutMs: number
}

/** What the checks read of the other settings. */
interface Rest {
  hosts: HostTarget[]
  mode: Mode
  binary?: string
  version?: string
  strategy: string
  watchdog: boolean
  allowDowngrade: boolean
  prestage: boolean
}

const MIN_HOLD_MS = 1000
const MAX_HOLD_MS = 7 * 24 * 3600_000

type Read = (name: string) => string

/** action.yml's default: GitHub passes it as if given, so only another value shows a choice. */
const DEFAULT_HOLD_TIMEOUT = '30m'
const holdTimeoutChosen = (read: Read) => ![DEFAULT_HOLD_TIMEOUT, ''].includes(read('hold-timeout').trim())

function holdTimeout(read: Read): number {
  const raw = read('hold-timeout').trim() || DEFAULT_HOLD_TIMEOUT
  const ms = parseDuration(raw)
  if (ms === null)
    throw new SettingsError('hold-timeout', `'${raw}' is not a duration`, 'Use e.g. 30m, 2h or 90s')
  if (ms < MIN_HOLD_MS || ms > MAX_HOLD_MS)
    throw new SettingsError(
      'hold-timeout',
      `${formatDuration(ms)} is out of range`,
      `Give a duration from ${formatDuration(MIN_HOLD_MS)} to ${formatDuration(MAX_HOLD_MS)}`
    )
  return ms
}

function holdFlag(read: Read): boolean {
  const raw = read('hold').trim()
  if (raw === '' || /^(false|no|off|0)$/i.test(raw)) return false
  if (/^(true|yes|on|1)$/i.test(raw)) return true
  throw new SettingsError('hold', `'${raw}' is not a boolean`, 'Use true or false')
}

/** Reads shard, hold and hold-timeout; hosts becomes the shard's slice. Throws SettingsError. */
export function applyHold(read: Read, s: Rest & HoldSettings): void {
  const raw = read('shard').trim()
  if (raw !== '') {
    const shard = parseShard(raw, s.hosts.length)
    if ('problem' in shard) throw new SettingsError('shard', shard.problem, shard.fix)
    s.shard = shard
    s.hosts = shardOf(s.hosts, shard)
  }
  s.hold = holdFlag(read)
  s.holdTimeoutMs = holdTimeout(read)
  checkHold(read, s)
}

function checkHold(read: Read, s: Rest & HoldSettings): void {
  const finishing = s.mode === 'commit' || s.mode === 'abort'
  if (finishing && s.binary !== undefined)
    throw new SettingsError(
      'binary',
      `is set but mode is ${s.mode}`,
      `mode: ${s.mode} finishes the hosts a hold: true run left held and sends no binary; remove binary`
    )
  if (finishing && s.version !== undefined)
    throw new SettingsError(
      'version',
      `is set but mode is ${s.mode}`,
      `mode: ${s.mode} keeps (or leaves) the version the hold run recorded; remove version`
    )
  if (finishing) refuseFinishingInputs(read, s)
  if (finishing && s.strategy === 'upstream')
    throw new SettingsError(
      'mode',
      `${s.mode} finishes hosts held by a hot upgrade; strategy upstream holds none`,
      'Use strategy: hot-upgrade (the default) for held fleets'
    )
  if (!s.hold && !finishing && holdTimeoutChosen(read))
    throw new SettingsError(
      'hold-timeout',
      'is set but hold is not true: only a held host waits for a commit or an abort',
      'Set hold: true to leave the hosts held, or remove hold-timeout'
    )
  if (!s.hold) return
  if (s.mode !== 'deploy')
    throw new SettingsError(
      'hold',
      `is true but mode is ${s.mode}`,
      'hold: true goes with mode: deploy; the commit and abort jobs leave hold unset'
    )
  if (s.strategy === 'upstream')
    throw new SettingsError(
      'hold',
      'is true but strategy is upstream, which holds no old process',
      'Use strategy: hot-upgrade (the default) with hold: true'
    )
  if (!s.watchdog)
    throw new SettingsError(
      'hold',
      'is true but watchdog is false: nothing would roll a held host back if no commit or abort comes',
      'Leave watchdog: true with hold: true'
    )
  if (/^(false|no|off|0)$/i.test(read('rollback-fleet').trim()))
    throw new SettingsError(
      'hold',
      'is true but rollback-fleet is false, which commits each host as soon as it passes',
      'Remove rollback-fleet: false (a held shard goes back as one when any of its hosts fails)'
    )
}

/**
 * The inputs that only a run sending a binary reads: a commit or abort run that is given one was
 * probably meant to be another job (a typo in mode), and would silently ignore it.
 */
function refuseFinishingInputs(read: Read, s: Rest & HoldSettings): void {
  const why: [string, string, boolean][] = [
    ['hold-timeout', "each host's watchdog keeps the hold-timeout of the hold run", holdTimeoutChosen(read)],
    ['allow-downgrade', 'no binary is sent: no version to compare', s.allowDowngrade],
    ['prestage', 'no binary is sent', s.prestage]
  ]
  for (const [name, reason, given] of why)
    if (given)
      throw new SettingsError(
        name,
        `is set but mode is ${s.mode} (${reason})`,
        `Remove ${name} from the ${s.mode} job`
      )
}

/**
 * Refuses hold: true, commit and abort for a supervisor that can neither hold its old process
 * nor hand back to its previous binary (before any host changes).
 */
export function checkHoldPairing(
  s: { hold: boolean; mode: string; supervisor: string },
  caps: { canHold: boolean; handBack: boolean },
  title: string
): void {
  if (caps.canHold || caps.handBack) return
  if (s.hold)
    throw new SettingsError(
      'hold',
      `is true but ${title} can neither hold its old process nor hand back to its previous binary yet`,
      "Run the shards without hold (each host commits when it passes); to take hosts back, run mode: rollback (a hand-over to the previous release from each host's store)"
    )
  if (s.mode === 'commit' || s.mode === 'abort')
    throw new SettingsError(
      'mode',
      `${s.mode} finishes held hosts, and ${title} leaves none held`,
      'To take hosts back to their previous release, run mode: rollback'
    )
}
