/**
 * A held host handed on beyond its run (hold: true): once the whole shard passed, each host's
 * old process stays parked (or, on a supervisor that cannot park it, the new process serves and
 * the previous binary stays kept for a hand-over back), the held-state record is written
 * (held.ts), the watchdog's deadline moves to hold-timeout, and the deploy lock is released. The engine's `leave` runs this in
 * place of the commit; when any of it fails, the engine sends the host back instead.
 */
import { formatDuration } from '../duration.js'
import type { Settle } from '../engine/index.js'
import { remoteSha256, sidePaths } from '../strategies/hot-upgrade/install.js'
import type { HostState } from '../strategies/strategy.js'
import { stopHeartbeat, type HostSafety, type SafetyOptions } from './guard.js'
import {
  HELD_HANDBACK_VERSION,
  HELD_KIND,
  HELD_VERSION,
  heldPath,
  readProcesses,
  removeHeld,
  writeHeld,
  type HeldRecord
} from './held.js'
import type { Journal } from './journal.js'
import { extendWatchdog, watchdogDir } from './watchdog.js'

export function leaveHeld(s: HostSafety, state: HostState, o: SafetyOptions, journal: Journal): Settle {
  return {
    name: 'leave held',
    async run({ host, report, log }) {
      stopHeartbeat(s)
      const holdMs = o.hold?.timeoutMs
      const r = state.running
      const newPid = state.newPid ?? report.newPid
      if (holdMs === undefined || !r || !newPid || s.releaseDir === undefined || !s.armed)
        throw new Error(
          'the host cannot be left held: its run did not record its processes, release store and watchdog'
        )
      const handBack = o.hold!.handBack
      const procs = await readProcesses(host, [r.pid, newPid])
      const old = procs.get(r.pid)
      const neu = procs.get(newPid)
      // What is recorded is read from /proc now, and must be what this run started from and started.
      // A hand-back host's old process exited after its drain: it is named as the watchdog saw it when armed.
      const oldStart = handBack ? s.oldStartTime : old?.sha256 === r.runningSha256 ? old.startTime : undefined
      if (oldStart === undefined && handBack)
        throw new Error(`the start time of the old process ${r.pid} was not read when the watchdog was armed`)
      if (oldStart === undefined)
        throw new Error(
          `the old process ${r.pid} is not the one this run parked (${old ? `it runs sha256 ${old.sha256}` : 'it is gone'})`
        )
      if (!neu || neu.sha256 !== state.source.sha256)
        throw new Error(
          `the new process ${newPid} does not run the new binary (${neu ? `sha256 ${neu.sha256}` : 'it is gone'})`
        )
      // Going back is a hand-over to the kept binary: without it there would be no way back.
      const kept = sidePaths(r.livePath).previous
      if (handBack && (await remoteSha256(host, kept)) !== r.liveSha256)
        throw new Error(`the previous binary is not kept as ${kept} (sha256 ${r.liveSha256}): no way back`)
      const dir = watchdogDir(s.releaseDir)
      const now = Date.now()
      const record: HeldRecord = {
        kind: HELD_KIND,
        ...(handBack
          ? { version: HELD_HANDBACK_VERSION, revert: 'handoff' as const }
          : { version: HELD_VERSION }),
        token: o.token,
        run: o.owner.runUrl ?? o.owner.runner ?? 'unknown',
        ...(o.owner.runId && /^\d{1,20}$/.test(o.owner.runId) ? { runId: o.owner.runId } : {}),
        host: host.name,
        supervisor: o.hold!.supervisor,
        pidFile: o.pidFile,
        livePath: r.livePath,
        previousPath: kept,
        oldBinarySha256: r.liveSha256,
        newBinarySha256: state.source.sha256,
        newVersion: state.newVersion ?? null,
        old: { pid: r.pid, startTime: oldStart, sha256: r.runningSha256 },
        new: { pid: newPid, startTime: neu.startTime, sha256: neu.sha256! },
        watchdog: dir,
        heldAt: new Date(now).toISOString(),
        deadline: new Date(now + holdMs).toISOString()
      }
      await writeHeld(host, s.releaseDir, record)
      if (!(await extendWatchdog(host, dir, o.token, holdMs))) {
        await removeHeld(host, s.releaseDir).catch(() => undefined)
        throw new Error(`the watchdog in ${dir} could not be given hold-timeout: it decided already`)
      }
      journal.update(host.name, { phase: 'settled', result: 'parked' })
      const back = formatDuration(holdMs)
      log.info(
        handBack
          ? `${host.name} [hold] held: the new process ${newPid} serves (the old process ${r.pid} cannot be parked: it drained and exited); ` +
              `the previous binary is kept as ${record.previousPath}; record ${heldPath(s.releaseDir)}; unless mode: commit or abort comes first, the watchdog hands back to it in ${back}`
          : `${host.name} [hold] held: the old process ${r.pid} is parked beside the new one ${newPid}; ` +
              `record ${heldPath(s.releaseDir)}; unless mode: commit or abort comes first, the watchdog returns the host to ${r.pid} in ${back}`
      )
    }
  }
}
