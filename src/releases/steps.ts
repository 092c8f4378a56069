/**
 * The release store's part of a host's run, as steps slotted in at the strategy's anchors:
 * - after inspection ("choose"): the live binary is in the store (recorded as found if zerodown
 *   never saw it) and marked live; the binary for this host is chosen (rollback mode: a release
 *   from its store, sha256 checked);
 * - after verify ("versions"): the versions are known; a downgrade is refused unless allowed;
 * - after the commit ("record"): the new release is recorded and made live, old ones pruned.
 */
import { beforeStage, insertAfter, StepError, type Step } from '../engine/index.js'
import type { Settings } from '../settings.js'
import type { TrustedServer } from '../host/trust.js'
import type { HostPlan, UpgradeSource } from '../strategies/strategy.js'
import {
  afterRollback,
  describeChange,
  downgradeProblem,
  liveRelease,
  markLive,
  versionText,
  provenanceFrom,
  releaseRows,
  StoreError,
  withRelease,
  type Provenance,
  type Release,
  type StoreState
} from './state.js'
import { storeReadAhead, type StoreAhead } from './read-ahead.js'
import { recordLive } from './record-live.js'
import { rollbackTarget } from './rollback-target.js'
import { ReleaseStore, SAVED_GATE, STORED_GATE } from './store.js'

export interface ReleaseOptions {
  mode: 'deploy' | 'rollback'
  releaseDir?: string
  keepReleases: number
  /** The new binary's version (input `version`); default: detected from the binary. */
  version?: string
  allowDowngrade: boolean
  rollbackTo?: string
  provenance: Provenance
  now?: () => Date
}

/** What the store's steps learn of one host. */
interface HostRelease {
  store?: ReleaseStore
  liveVersion: string | null
  newVersion: string | null
  target?: Release
  /**
   * The store as pre-flight left it, and the new binary's sha256 there as read with pre-flight's
   * reads: the lock is held from then on, so the record after the commit need not read them again.
   */
  state?: StoreState
  storedNew?: { sha256: string; read: Promise<string | null | undefined> }
  /** The store's reads sent behind the deploy lock, taken by the choose step. */
  ahead?: StoreAhead | null
}

const shortSha = (s: string) => s.slice(0, 12)

const refuse = (step: 'preflight' | 'verify', e: unknown): never => {
  throw e instanceof StoreError ? new StepError(step, e.message) : e
}

/**
 * The binary a host gets, in one place: a deploy sends the run's binary; a rollback takes the
 * target release from the host's own store (nothing is sent), after checking its sha256.
 */
export async function chooseBinary(
  o: ReleaseOptions,
  store: ReleaseStore,
  state: StoreState,
  live: { sha256: string },
  deployed: UpgradeSource,
  note: (s: string) => void
): Promise<{ source: UpgradeSource; target?: Release }> {
  if (o.mode === 'deploy') return { source: deployed }
  const target = (() => {
    try {
      return rollbackTarget(state, o.rollbackTo)
    } catch (e) {
      return refuse('preflight', e)
    }
  })()
  if (target.sha256 === live.sha256)
    note(
      `rollback-to ${o.rollbackTo ?? ''} names the live release (sha256 ${shortSha(target.sha256)}): nothing to roll back on this host`
    )
  else await store.checkRelease(target, state).catch(e => refuse('preflight', e))
  const source = {
    sha256: target.sha256,
    hostPath: store.releasePath(target.sha256),
    version: target.version ?? undefined
  }
  return { source, target }
}

/**
 * The store's steps slotted into one host's run, and its reads sent ahead with the strategy's
 * (behind the deploy lock's command).
 */
export function withReleases(plan: HostPlan, o: ReleaseOptions): HostPlan {
  const hr: HostRelease = { liveVersion: null, newVersion: null }
  let steps = insertAfter(plan.steps, plan.anchors.inspected, chooseStep(plan, o, hr))
  steps = insertAfter(steps, plan.anchors.verified, versionsStep(o, hr))
  // Before the strategy's own `after` steps (which await what the commit sent ahead of it).
  steps = beforeStage(steps, 'after', recordStep(plan, o, hr))
  const prefetch = (server?: TrustedServer) => {
    plan.prefetch?.(server)
    if (server) hr.ahead = storeReadAhead(plan.state.host, o.releaseDir, server, plan.state.source.sha256)
  }
  return { ...plan, steps, prefetch }
}

const nowOf = (o: ReleaseOptions) => (o.now ? o.now() : new Date()).toISOString()

/** After inspection: the live binary recorded, and the binary for this host chosen. */
function chooseStep(plan: HostPlan, o: ReleaseOptions, hr: HostRelease): Step {
  const st = plan.state
  const deployed = st.source
  const now = () => nowOf(o)
  return {
    name: 'choose',
    stage: 'prepare',
    async run({ host, report, note, retrying }) {
      const r = st.running!
      const store = ReleaseStore.forLive(host, o.releaseDir, r.livePath)
      hr.store = store
      // Sent ahead for this store (not after a lost connection, which may have lost them).
      const early = !retrying && hr.ahead?.dir === store.dir ? hr.ahead : null
      hr.ahead = null
      // Issued first: it travels with recordLive's reads (undefined when it failed: read it again).
      const storedNew =
        early?.storedNew.sha256 === deployed.sha256
          ? early.storedNew.read
          : store.storedSha256(deployed.sha256).catch(() => undefined)
      if (deployed.sha256 !== r.runningSha256) hr.storedNew = { sha256: deployed.sha256, read: storedNew }
      const state = (hr.state = await recordLive(store, r, now(), note, st.storeLinkable, early))
      const live = liveRelease(state)
      hr.liveVersion = hr.newVersion = live?.version ?? versionText(r.version)
      report.releases = releaseRows(state)
      report.previousVersion = report.version = hr.liveVersion ?? undefined
      const { source, target } = await chooseBinary(
        o,
        store,
        state,
        { sha256: r.runningSha256 },
        deployed,
        note
      )
      st.source = source
      if (o.mode === 'deploy') {
        // With the version input, a downgrade is refused before anything is sent (an unchanged
        // binary is not a downgrade: the run ends it as unchanged).
        if (source.sha256 === r.runningSha256) return
        const problem = downgradeProblem(versionText(o.version), hr.liveVersion, o.allowDowngrade)
        if (problem) throw new StepError('preflight', problem)
        return
      }
      hr.target = target
      hr.newVersion = target!.version
      report.version = target!.version ?? undefined
      note(
        `rollback target: ${target!.version ?? 'unknown version'} (sha256 ${shortSha(target!.sha256)}, deployed ${target!.deployedAt}) from ${store.releasePath(target!.sha256)}, sha256 checked`
      )
    }
  }
}

/** After verify: the versions known; a downgrade refused unless allowed. */
function versionsStep(o: ReleaseOptions, hr: HostRelease): Step {
  return {
    name: 'versions',
    stage: 'prepare',
    async run({ report, note }) {
      const detected = versionText(report.version)
      hr.newVersion =
        o.mode === 'rollback' ? (hr.target?.version ?? detected) : (versionText(o.version) ?? detected)
      report.version = hr.newVersion ?? undefined
      report.previousVersion = hr.liveVersion ?? undefined
      if (o.mode === 'deploy') {
        const problem = downgradeProblem(hr.newVersion, hr.liveVersion, o.allowDowngrade)
        if (problem) throw new StepError('verify', problem)
      }
      note(`version ${describeChange(hr.liveVersion, hr.newVersion)}`)
    }
  }
}

type Saved = Awaited<ReturnType<ReleaseStore['saveAndPrune']>>

/** After the commit: the new release recorded and made live, old ones pruned. */
function recordStep(plan: HostPlan, o: ReleaseOptions, hr: HostRelease): Step {
  const st = plan.state
  return {
    name: 'record',
    stage: 'after',
    async run({ report, note, sent }) {
      const store = hr.store
      if (!store) return
      const source = st.source
      const early = hr.storedNew?.sha256 === source.sha256 ? await hr.storedNew.read : undefined
      const [read, stored] = await Promise.all([
        hr.state ?? store.read(),
        early !== undefined ? early : store.storedSha256(source.sha256)
      ])
      let state = read
      let meta: Release | undefined
      let saving: Promise<Saved | null> | null = null
      const at = nowOf(o)
      if (o.mode === 'rollback' && state.releases.some(x => x.sha256 === source.sha256)) {
        state = afterRollback(state, source.sha256, at)
      } else {
        const release: Release = (meta = {
          sha256: source.sha256,
          version: hr.newVersion,
          deployedAt: at,
          origin: 'deploy',
          ...o.provenance
        })
        state = markLive(withRelease(state, release), source.sha256, at)
        // The file's hard link or copy goes with state.json's write, run by the host only if what
        // landed checks out (STORED_GATE): one round trip. A link that fails (another mount than
        // pre-flight saw) is copied, and state.json written after.
        const gated = store.gates && stored !== source.sha256
        const how = store.put(st.running!.livePath, source.sha256, stored, {
          link: st.storeLinkable,
          gate: gated ? STORED_GATE : undefined
        })
        if (gated) saving = store.saveAndPruneIf(STORED_GATE, state, o.keepReleases, meta)
        saving?.catch(() => undefined) // awaited once the file is stored; skipped by the host if not
        // All is sent unless state.json's write is skipped (then it is written after): what
        // follows (the lock's release) needs the gate that write opens.
        if (saving) sent?.(SAVED_GATE)
        note(
          `release store: recorded ${release.version ?? 'unknown version'} (sha256 ${shortSha(release.sha256)}, ${await how})`
        )
      }
      const { state: saved, pruned } =
        (await saving) ?? (await store.saveAndPrune(state, o.keepReleases, meta))
      report.releases = releaseRows(saved)
      note(
        `release store ${store.dir}: live ${liveRelease(saved)?.version ?? 'unknown'}; ${saved.releases.length} release(s) kept` +
          (pruned.length ? `; pruned ${pruned.map(p => p.version ?? shortSha(p.sha256)).join(', ')}` : '')
      )
    }
  }
}

/** The store's options from the settings and this run's environment (GITHUB_SHA, ...). */
export function releaseOptions(settings: Settings, env: Record<string, string | undefined>): ReleaseOptions {
  return {
    // plan previews a deploy; status reads no options of the store's steps.
    mode: settings.mode === 'rollback' ? 'rollback' : 'deploy',
    releaseDir: settings.releaseDir,
    keepReleases: settings.keepReleases,
    version: settings.version,
    allowDowngrade: settings.allowDowngrade,
    rollbackTo: settings.rollbackTo,
    provenance: provenanceFrom(env)
  }
}
