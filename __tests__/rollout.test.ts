/**
 * Fleet rollouts through the bundle (runAction, as GitHub runs it) against a real sandbox of six
 * hosts (sshd + nginx on 127.0.0.41-46) and a bastion (127.0.0.47): canary then batches in
 * parallel, the fleet committed only once every host passed, fleet rollback to the original
 * masters, rollback-fleet: false, one SSH connection per host, per-host log groups, and a
 * rollout through a jump host that is the only way to reach the hosts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { lookup } from 'node:dns/promises'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { HostReport, HostResult } from '../src/engine/types.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'
import { confWith, health, hostState, sha256, writeHostFile } from './helpers/upgrade-host.js'

const RUN_STEPS = ['connect', 'preflight', 'upload', 'verify', 'swap', 'usr2', 'winch', 'health', 'drain']

let sb: Sandbox
let fleet: SandboxHost[]
let bastion: SandboxHost
let dir: string
let build: string
let newSha: string
let oldSha: string

beforeAll(() => {
  sb = sandboxUp({ first: 41, count: 7 })
  fleet = sb.hosts.slice(0, 6)
  bastion = sb.hosts[6]!
  dir = scratchDir('zerodown-rollout-')
  build = nginxBuild(dir, 'fleet-v2')
  newSha = sha256(build)
  oldSha = sha256('/usr/sbin/nginx')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})
beforeEach(() => {
  for (const h of fleet) sb.nginxStart(h, { reset: true })
})

const label = (h: SandboxHost) => `${sb.user}@${h.address}:${h.sshPort}`

function inputs(hosts: SandboxHost[], over: Record<string, string> = {}): Record<string, string> {
  return {
    ...sandboxInputs(sb, hosts),
    binary: build,
    'health-interval': '100ms',
    'health-checks': '2',
    'health-timeout': '1s',
    ...over
  }
}

interface Report {
  result: HostResult
  counts: Record<HostResult, number>
  hosts: HostReport[]
}

function reportOf(run: ActionRun): Report {
  expect(run.outputs.report).toBeDefined()
  return JSON.parse(run.outputs.report!) as Report
}

/** Successful public-key logins recorded by the host's sshd (LogLevel VERBOSE), with the key type. */
function logins(h: SandboxHost): string[] {
  const log = readFileSync(`${h.root}/sshd.log`, 'utf8')
  return [...log.matchAll(/^Accepted publickey for zd from \S+ port \d+ ssh2: (\S+)/gm)].map(m => m[1]!)
}

/** A host whose new master answers 503 on /health (the running old workers keep the old config). */
function breakHealth(h: SandboxHost): void {
  writeHostFile(sb, h, h.confPath, confWith(sb, h, 'return 200 "ok\\n";', 'return 503 "broken\\n";'))
}

const ms = (iso: string) => {
  const t = Date.parse(iso)
  expect(Number.isFinite(t)).toBe(true)
  return t
}
const step = (r: HostReport, name: string) => r.steps.find(s => s.name === name)
/** From preflight to the end of the drain: the part of the upgrade that holds a max-parallel slot. */
const span = (r: HostReport) => ({
  from: ms(step(r, 'preflight')!.startedAt),
  to: ms(step(r, 'drain')!.endedAt)
})

/** The log's groups: title and lines, asserting that groups never nest. */
function groups(log: string): { title: string; lines: string[] }[] {
  const out: { title: string; lines: string[] }[] = []
  let open: { title: string; lines: string[] } | null = null
  for (const line of log.split('\n')) {
    if (line.startsWith('::group::')) {
      expect(open).toBeNull()
      open = { title: line.slice('::group::'.length), lines: [] }
    } else if (line.startsWith('::endgroup::')) {
      expect(open).not.toBeNull()
      out.push(open!)
      open = null
    } else if (open) open.lines.push(line)
  }
  expect(open).toBeNull()
  return out
}

/** Every host's lines sit in groups of its own, each line naming the host. */
function expectHostGroups(log: string, hosts: SandboxHost[]): void {
  const all = groups(log)
  for (const h of hosts) {
    const mine = all.filter(g => g.title.startsWith(`${label(h)}: `))
    expect(mine.length).toBeGreaterThan(0)
    for (const g of mine) for (const line of g.lines) expect(line).toContain(label(h))
  }
  // Groups never nest, and no host's step line is outside a group but the step's closing line
  // (✓/✗ with its duration), printed after the step's own group so it shows when collapsed, and the
  // fleet's heartbeat (a slow step on a loaded machine), which quotes each busy host's last line.
  let depth = 0
  for (const line of log.split('\n')) {
    if (line.startsWith('::group::')) expect(++depth).toBe(1)
    else if (line.startsWith('::endgroup::')) depth--
    else if (
      /\[(preflight|upload|verify|swap|usr2|winch|health|drain|quit|rollback)\]/.test(line) &&
      !/^[✓✗] /.test(line) &&
      !line.startsWith('still working on ')
    )
      expect([depth, line]).toEqual([1, line]) // the line, to say which one strayed
  }
}

/** The highest number of hosts between preflight and the end of their drain at the same moment. */
function maxConcurrent(reports: HostReport[]): number {
  const events = reports.flatMap(r => {
    const s = span(r)
    return [
      { t: s.from, d: 1 },
      { t: s.to, d: -1 }
    ]
  })
  events.sort((a, b) => a.t - b.t || a.d - b.d)
  let now = 0
  let max = 0
  for (const e of events) max = Math.max(max, (now += e.d))
  return max
}

describe('a fleet of six hosts', () => {
  it('upgrades the canary alone, then batches of max-parallel in parallel, and commits once all passed', async () => {
    const before = fleet.map(logins)
    const run = await runAction(inputs(fleet, { 'max-parallel': '3' }))
    expect(run.outputs.result).toBe('upgraded')
    expect(run.code).toBe(0)
    const rep = reportOf(run)
    expect(rep.counts.upgraded).toBe(6)
    expect(rep.hosts.map(h => h.host)).toEqual(fleet.map(label))
    expect(rep.hosts.map(h => h.result)).toEqual(Array(6).fill('upgraded'))
    expect(rep.hosts.map(h => h.batch)).toEqual([0, 1, 1, 1, 2, 2])

    for (const [i, r] of rep.hosts.entries()) {
      expect(r.steps.map(s => s.name)).toEqual([...RUN_STEPS, 'quit'])
      for (const s of r.steps) expect(ms(s.endedAt)).toBeGreaterThanOrEqual(ms(s.startedAt))
      const st = hostState(sb, fleet[i]!)
      expect(st.pid).toBe(r.newPid)
      expect(st.masters).toEqual([r.newPid])
      expect(st.liveSha256).toBe(newSha)
      expect(st.oldbin).toBe(false)
      expect(await health(fleet[i]!)).toBe('200 ok')
    }

    // The canary passed before any other host began; each batch began after the previous one passed.
    const [canary, b1, b2] = [[0], [1, 2, 3], [4, 5]].map(b => b.map(i => span(rep.hosts[i]!)))
    for (const s of [...b1!, ...b2!]) expect(s.from).toBeGreaterThanOrEqual(canary![0]!.to)
    for (const s of b2!) expect(s.from).toBeGreaterThanOrEqual(Math.max(...b1!.map(x => x.to)))
    // The hosts of a batch ran at the same time: each started before any of them finished.
    for (const b of [b1!, b2!])
      expect(Math.max(...b.map(s => s.from))).toBeLessThan(Math.min(...b.map(s => s.to)))
    expect(maxConcurrent(rep.hosts)).toBe(3)
    // Parked until the whole fleet passed: no old master got its QUIT before the last drain ended.
    const lastDrain = Math.max(...rep.hosts.map(r => span(r).to))
    for (const r of rep.hosts) expect(ms(step(r, 'quit')!.startedAt)).toBeGreaterThanOrEqual(lastDrain)

    // One SSH connection per host, reused for every step (health checks included).
    expect(fleet.map(h => logins(h).length - before[fleet.indexOf(h)]!.length)).toEqual(Array(6).fill(1))
    expectHostGroups(run.log, fleet)
    for (const h of fleet) expect(run.summary).toContain(label(h))
  })

  it('stops at a failing canary: it rolls back, and every other host stays untouched', async () => {
    const [canary, ...rest] = fleet
    breakHealth(canary!)
    const before = fleet.map(h => hostState(sb, h))
    const run = await runAction(inputs(fleet, { 'max-parallel': '3' }))
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('rolled-back')
    const rep = reportOf(run)
    expect(rep.hosts.map(h => h.result)).toEqual(['rolled-back', ...Array(5).fill('untouched')])
    expect(rep.hosts[0]!.failedStep).toBe('health')
    expect(rep.hosts[0]!.error).toMatch(/503/)
    for (const r of rep.hosts.slice(1)) expect(r.steps.filter(s => s.name !== 'connect')).toEqual([]) // at most connected ahead of its batch
    // The canary is back on its original master and binary; the others never changed.
    for (const [i, h] of fleet.entries()) {
      const st = hostState(sb, h)
      expect(st).toEqual(i === 0 ? { ...before[i]!, leftovers: st.leftovers } : before[i])
      expect(st.liveSha256).toBe(oldSha)
    }
    expect(await health(canary!)).toBe('200 ok')
    for (const h of rest) expect(await health(h)).toBe('200 ok')
    const failure = run.log.split('\n').find(l => l.startsWith('::error::rolled-back:'))
    expect(failure).toContain(`${label(canary!)} failed at health`)
    expect(failure).toContain('6 hosts: 0 upgraded, 1 rolled back, 0 failed, 5 untouched')
    expectHostGroups(run.log, [canary!])
  })

  it('rolls the canary and the earlier batches back to their original masters when a later batch fails', async () => {
    // canary 41, then batches [42, 43], [44, 45], [46]; 44 fails its health gate.
    const bad = fleet[3]!
    breakHealth(bad)
    const before = fleet.map(h => hostState(sb, h))
    const run = await runAction(inputs(fleet, { 'max-parallel': '2' }))
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('rolled-back')
    const rep = reportOf(run)
    expect(rep.hosts.map(h => h.batch)).toEqual([0, 1, 1, 2, 2, 3])
    expect(rep.hosts.map(h => h.result)).toEqual([...Array(5).fill('rolled-back'), 'untouched'])
    expect(rep.counts).toMatchObject({ upgraded: 0, 'rolled-back': 5, failed: 0, untouched: 1 })
    expect(rep.hosts[3]!.failedStep).toBe('health')
    for (const i of [0, 1, 2, 4]) {
      const r = rep.hosts[i]!
      // It had passed and was parked (its old master never got a QUIT); the fleet rollback took it back.
      expect(r.steps.map(s => s.name)).toEqual([...RUN_STEPS, 'rollback'])
      expect(r.error).toContain(`fleet rollback: ${label(bad)} failed at health`)
    }
    expect(rep.hosts[5]!.steps.filter(s => s.name !== 'connect')).toEqual([])

    // Every host on its original master, the old binary, its workers serving.
    for (const [i, h] of fleet.entries()) {
      const st = hostState(sb, h)
      expect(st.pid).toBe(before[i]!.pid)
      expect(st.masters).toEqual(before[i]!.masters)
      expect(st.liveSha256).toBe(oldSha)
      expect(st.oldbin).toBe(false)
      expect(sb.nginxWorkers(h, st.pid!).length).toBeGreaterThan(0)
      expect(await health(h)).toBe('200 ok')
    }
    const failure = run.log.split('\n').find(l => l.startsWith('::error::rolled-back:'))
    expect(failure).toContain(`${label(bad)} failed at health (rolled back)`)
    expect(failure).toContain('6 hosts: 0 upgraded, 5 rolled back, 0 failed, 1 untouched')
    expect(failure).toContain('The old version is serving on every host this run changed')
    expectHostGroups(run.log, fleet.slice(0, 5))
  })

  it('counts a host it cannot connect to as failed, says why, and rolls the others back', async () => {
    // Nothing listens on 127.0.0.48:2222. Canary 41, then the batch [42, 48].
    const hosts = fleet.slice(0, 2)
    const before = hosts.map(h => hostState(sb, h))
    const base = inputs(hosts, { 'max-parallel': '2' })
    const run = await runAction({ ...base, hosts: `${base.hosts}\n${sb.user}@127.0.0.48:2222` })
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('failed')
    const rep = reportOf(run)
    expect(rep.hosts.map(h => h.result)).toEqual(['rolled-back', 'rolled-back', 'failed'])
    expect(rep.hosts[2]!.failedStep).toBe('connect')
    expect(rep.hosts[2]!.error).toMatch(/ECONNREFUSED 127\.0\.0\.48:2222\. Check the host and port in hosts/)
    for (const [i, h] of hosts.entries()) {
      const st = hostState(sb, h)
      expect(st.pid).toBe(before[i]!.pid)
      expect(st.masters).toEqual(before[i]!.masters)
      expect(st.liveSha256).toBe(oldSha)
    }
    const failure = run.log.split('\n').find(l => l.startsWith('::error::failed:'))
    expect(failure).toContain(`${sb.user}@127.0.0.48:2222 failed at connect`)
    expect(failure).toContain('3 hosts: 0 upgraded, 2 rolled back, 1 failed, 0 untouched')
  })

  it('on a cancel, starts no further host and takes the parked canary back to its original master', async () => {
    // Canary 41 (parked once it passed), then the batch [42, 43]: SIGINT as that batch starts.
    const hosts = fleet.slice(0, 3)
    const before = hosts.map(h => hostState(sb, h))
    const run = await runAction(inputs(hosts, { 'max-parallel': '2' }), {
      kill: { when: /^batch 1 of 1: /m, signal: 'SIGINT' }
    })
    expect(run.code).toBe(1)
    const rep = reportOf(run)
    // No host is left on the new version, none parked (the batch's hosts stopped before any change).
    expect(rep.counts).toMatchObject({ upgraded: 0, parked: 0 })
    expect(rep.hosts[0]!.result).toBe('rolled-back')
    expect(rep.hosts[0]!.error).toContain('fleet rollback')
    for (const r of rep.hosts.slice(1)) expect(['rolled-back', 'failed', 'untouched']).toContain(r.result)
    for (const [i, h] of hosts.entries()) {
      const st = hostState(sb, h)
      expect(st.pid).toBe(before[i]!.pid)
      expect(st.masters).toEqual(before[i]!.masters)
      expect(st.liveSha256).toBe(oldSha)
      expect(st.oldbin).toBe(false)
      expect(await health(h)).toBe('200 ok')
    }
  })

  it('with rollback-fleet: false, keeps the hosts that passed, stops, and reports a failed, mixed fleet', async () => {
    const bad = fleet[3]!
    breakHealth(bad)
    const before = fleet.map(h => hostState(sb, h))
    const run = await runAction(inputs(fleet, { 'max-parallel': '2', 'rollback-fleet': 'false' }))
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('failed')
    const rep = reportOf(run)
    // 45 ran in the same batch as 44 and passed.
    expect(rep.hosts.map(h => h.result)).toEqual([
      'upgraded',
      'upgraded',
      'upgraded',
      'rolled-back',
      'upgraded',
      'untouched'
    ])
    for (const [i, h] of fleet.entries()) {
      const st = hostState(sb, h)
      const upgraded = rep.hosts[i]!.result === 'upgraded'
      expect(st.liveSha256).toBe(upgraded ? newSha : oldSha)
      expect(st.pid).toBe(upgraded ? rep.hosts[i]!.newPid : before[i]!.pid)
      expect(st.masters).toEqual([st.pid])
      expect(await health(h)).toBe('200 ok')
    }
    const failure = run.log.split('\n').find(l => l.startsWith('::error::failed:'))
    expect(failure).toContain('6 hosts: 4 upgraded, 1 rolled back, 0 failed, 1 untouched')
    expect(failure).toContain('the fleet is mixed')
  })
})

describe('through a jump host', () => {
  // The hosts are named web-N.fleet.test, names that only the bastion and the hosts resolve (an
  // /etc/hosts bind-mounted in their mount namespaces): this machine cannot reach them directly.
  const targets = () => fleet.slice(0, 3)
  const nameOf = (i: number) => `web-${i + 1}.fleet.test`

  beforeAll(() => {
    const names = targets()
      .map((h, i) => `${h.address} ${nameOf(i)}\n`)
      .join('')
    for (const h of [bastion, ...targets()]) {
      writeFileSync(sb.hostPath(h, '/run/zd-fleet-hosts'), `127.0.0.1 localhost\n${names}`)
      const r = sb.exec(h, ['mount', '--bind', '/run/zd-fleet-hosts', '/etc/hosts'])
      expect(r.status).toBe(0)
    }
  })
  afterAll(() => {
    for (const h of [bastion, ...(fleet ? targets() : [])]) sb?.exec(h, ['umount', '/etc/hosts'])
  })

  /** known_hosts lines for the hosts under their names, and the bastion's line (or a forged one). */
  function knownHosts(bastionLine: string): string {
    const lines = targets().map((h, i) => h.hostKeyLine.replace(/^\S+/, `[${nameOf(i)}]:${h.sshPort}`))
    return [...lines, bastionLine].join('\n') + '\n'
  }

  function jumpInputs(bastionLine: string): Record<string, string> {
    return inputs(targets(), {
      hosts: targets()
        .map((h, i) => `${sb.user}@${nameOf(i)}:${h.sshPort}`)
        .join('\n'),
      'known-hosts': knownHosts(bastionLine),
      'jump-host': `${sb.user}@${bastion.address}:${bastion.sshPort}`,
      // The bastion gets its own key (RSA); the hosts the main one (ed25519): the sshd logs tell them apart.
      'jump-private-key': readFileSync(sb.rsaKeyPath, 'utf8'),
      'max-parallel': '2'
    })
  }

  it('upgrades every host through the bastion, with the bastion’s own key', async () => {
    await expect(lookup(nameOf(0))).rejects.toThrow()
    const bastionBefore = logins(bastion).length
    const before = targets().map(h => logins(h).length)
    const bastionNginx = hostState(sb, bastion)
    const run = await runAction(jumpInputs(bastion.hostKeyLine))
    expect(run.outputs.result).toBe('upgraded')
    expect(run.code).toBe(0)
    const rep = reportOf(run)
    expect(rep.hosts.map(h => h.host)).toEqual(
      targets().map((h, i) => `${sb.user}@${nameOf(i)}:${h.sshPort}`)
    )
    for (const [i, h] of targets().entries()) {
      const st = hostState(sb, h)
      expect(st.liveSha256).toBe(newSha)
      expect(st.masters).toEqual([rep.hosts[i]!.newPid])
      expect(step(rep.hosts[i]!, 'connect')!.observations.join(' ')).toContain(
        `through the jump host ${sb.user}@${bastion.address}:${bastion.sshPort}`
      )
      // The health URL http://{host}:8080/health became the host's name, resolved on the host.
      expect(
        rep.hosts[i]!.health.some(c => c.ok && c.detail.includes(`http://${nameOf(i)}:8080/health`))
      ).toBe(true)
      // One connection per host, with the main key; one bastion connection for all, with the bastion's key.
      expect(logins(h).slice(before[i]!)).toEqual(['ED25519'])
    }
    expect(logins(bastion).slice(bastionBefore)).toEqual(['RSA'])
    expect(hostState(sb, bastion)).toEqual(bastionNginx) // the bastion itself is not upgraded
  })

  it('with idle-connections 0, the parked canary logs in again through the one bastion connection', async () => {
    const bastionBefore = logins(bastion).length
    const before = targets().map(h => logins(h).length)
    const run = await runAction({ ...jumpInputs(bastion.hostKeyLine), 'idle-connections': '0' })
    expect([run.code, run.outputs.result]).toEqual([0, 'upgraded'])
    expect(run.log).toContain('1 parked host(s) waited with their connection closed (idle-connections)')
    // The canary waited through the last batch detached: a second login to commit, through the
    // bastion connection the run already had (no second bastion login).
    expect(targets().map((h, i) => logins(h).slice(before[i]!))).toEqual([
      ['ED25519', 'ED25519'],
      ['ED25519'],
      ['ED25519']
    ])
    expect(logins(bastion).slice(bastionBefore)).toEqual(['RSA'])
    for (const h of targets()) expect(hostState(sb, h).liveSha256).toBe(newSha)
  })

  it('refuses a bastion whose host key is not the trusted one, before anything is sent', async () => {
    const forged = fleet[5]!.hostKeyLine.replace(/^\S+/, `[${bastion.address}]:${bastion.sshPort}`)
    const before = targets().map(h => hostState(sb, h))
    const loginsBefore = targets().map(h => logins(h).length)
    const bastionBefore = logins(bastion).length
    const run = await runAction(jumpInputs(forged))
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('failed')
    const rep = reportOf(run)
    expect(rep.hosts.map(h => h.result)).toEqual(['failed', 'untouched', 'untouched'])
    expect(rep.hosts[0]!.failedStep).toBe('connect')
    expect(rep.hosts[0]!.error).toContain(`HOST KEY MISMATCH for [${bastion.address}]:${bastion.sshPort}`)
    expect(run.log).toMatch(/::error::failed: .*HOST KEY MISMATCH/)
    for (const [i, h] of targets().entries()) {
      expect(hostState(sb, h)).toEqual(before[i])
      expect(logins(h).length).toBe(loginsBefore[i])
    }
    expect(logins(bastion).length).toBe(bastionBefore) // no key offered to a bastion we do not trust
  })
})
