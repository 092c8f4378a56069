/**
 * The trust decision (src/host/trust.ts) on facts as the probe prints them: who the master may
 * run as, which owners and modes of the pid file, the live folder, the staging file and the
 * store pass, and how the master's executable may be run. The probe itself runs on a real host
 * in trust.test.ts.
 */
import { describe, expect, it } from '@jest/globals'
import { masterExeRun, refuseUnclearedExe } from '../src/host/exe-run.js'
import { judgeTrust, parseTrust, type TrustFacts } from '../src/host/trust.js'

const PLAN = { pidFile: '/run/nginx.pid' }
const DEPLOY = 1001
const OTHER = 1002

/** A sane host: root's /run and /usr/sbin, the deploy user's store; the master runs as root. */
function probeOutput(
  o: {
    master?: number
    run?: string
    pidfile?: string
    sbin?: string
    staging?: string
    allowed?: string
  } = {}
): string {
  const m = o.master ?? 0
  return [
    `me\t${DEPLOY}\t${DEPLOY}\tdeploy`,
    ...(o.allowed ? [o.allowed] : []),
    `master\t${m}\t${m}\t${m === 0 ? 'root' : m === DEPLOY ? 'deploy' : 'mallory'}`,
    `P\tpidfile\t${o.pidfile ?? '0\t0\t644\tregular file\troot'}\t/run/nginx.pid`,
    `P\tpiddir\t${o.run ?? '0\t0\t755\tdirectory\troot'}\t/run`,
    `P\texe\t0\t0\t755\tregular file\troot\t/proc/9/exe`,
    `P\tlivedir\t${o.sbin ?? '0\t0\t755\tdirectory\troot'}\t/usr/sbin`,
    `P\tlivedir-up\t0\t0\t755\tdirectory\troot\t/usr`,
    `P\tlivedir-up\t0\t0\t755\tdirectory\troot\t/`,
    ...(o.staging ? [`P\tstaging\t${o.staging}\t/usr/sbin/.nginx.zerodown-new`] : []),
    `P\tstore\t${DEPLOY}\t${DEPLOY}\t755\tdirectory\tdeploy\t/var/lib/zerodown`,
    `P\tstore-up\t0\t0\t1777\tdirectory\troot\t/var/lib`,
    ''
  ].join('\n')
}

const judge = (out: string, plan: { pidFile: string; masterUser?: string } = PLAN) =>
  judgeTrust(parseTrust(out, 9), plan)

describe('judgeTrust', () => {
  it('trusts a root master with root-owned folders and a store of the deploy user', () => {
    expect(judge(probeOutput())).toBeNull()
  })

  it('trusts a master run by the deploy user, whose folder holds the pid file', () => {
    expect(
      judge(probeOutput({ master: DEPLOY, run: `${DEPLOY}\t${DEPLOY}\t755\tdirectory\tdeploy` }))
    ).toBeNull()
  })

  it('refuses a master of another user, and names master-user as the way to allow it', () => {
    expect(judge(probeOutput({ master: OTHER }))).toMatch(
      /^the master 9 runs as mallory \(uid 1002\), neither root nor the deploy user deploy: .*set master-user: mallory$/
    )
  })

  it('accepts that user once master-user names it, and trusts the files it owns', () => {
    const out = probeOutput({
      master: OTHER,
      allowed: `allowed\t${OTHER}\tmallory`,
      pidfile: `${OTHER}\t${OTHER}\t644\tregular file\tmallory`
    })
    expect(judge(out, { ...PLAN, masterUser: 'mallory' })).toBeNull()
  })

  it('refuses a master-user the host does not have', () => {
    expect(
      judge(probeOutput({ allowed: 'allowed\t-\tnobody2' }), { ...PLAN, masterUser: 'nobody2' })
    ).toMatch(/^master-user nobody2 is not a user of the host/)
  })

  it('refuses a pid file folder writable by every user, even sticky, with the chmod that fixes it', () => {
    expect(judge(probeOutput({ run: '0\t0\t1777\tdirectory\troot' }))).toBe(
      'the folder of pid-file /run/nginx.pid, /run, is writable by every user (mode 1777): another user could replace the files in it or plant links. Nothing was changed. Close it: chmod o-w /run'
    )
  })

  it('refuses a pid file owned by another user, or a symlink', () => {
    expect(judge(probeOutput({ pidfile: `${OTHER}\t${OTHER}\t644\tregular file\tmallory` }))).toMatch(
      /^pid-file \/run\/nginx\.pid is owned by mallory \(uid 1002\)/
    )
    expect(judge(probeOutput({ pidfile: `${OTHER}\t${OTHER}\t777\tsymbolic link\tmallory` }))).toMatch(
      /^pid-file \/run\/nginx\.pid is a symbolic link, not a regular file.*rm -f -- \/run\/nginx\.pid$/
    )
  })

  it('refuses a live folder writable by another group, and a symlink at the staging path', () => {
    expect(judge(probeOutput({ sbin: '0\t50\t775\tdirectory\troot' }))).toMatch(
      /^the folder of the live binary, \/usr\/sbin, is writable by its group \(gid 50, mode 775\)/
    )
    expect(judge(probeOutput({ sbin: `0\t${DEPLOY}\t775\tdirectory\troot` }))).toBeNull()
    expect(judge(probeOutput({ staging: `${OTHER}\t${OTHER}\t777\tsymbolic link\tmallory` }))).toMatch(
      /^the staging file \/usr\/sbin\/\.nginx\.zerodown-new is a symbolic link/
    )
  })

  it('lets a sticky parent folder pass (/tmp above a store) but not a sticky folder files are made in', () => {
    expect(judge(probeOutput())).toBeNull() // /var/lib 1777 as a parent
    const out = probeOutput().replace('P\tstore\t1001\t1001\t755', 'P\tstore\t1001\t1001\t1777')
    expect(judge(out)).toMatch(/^the release store's folder \/var\/lib\/zerodown is writable by every user/)
  })

  it('quotes the path in the command it prints', () => {
    const out = probeOutput()
      .replace('\t/run\n', "\t/run/a b'c\n")
      .replace('0\t0\t755\tdirectory\troot\t/run', '0\t0\t757\tdirectory\troot\t/run')
    expect(judge(out)).toMatch(/chmod o-w '\/run\/a b'\\''c'$/)
  })
})

describe('masterExeRun: never with more privilege than the file owner has', () => {
  const facts = (exeUid: number, master: number): TrustFacts => {
    const f = parseTrust(probeOutput({ master }), 9)
    f.paths.find(p => p.role === 'exe')!.uid = exeUid
    f.paths.find(p => p.role === 'exe')!.owner =
      exeUid === 0 ? 'root' : exeUid === DEPLOY ? 'deploy' : 'mallory'
    return f
  }
  const live = { sudo: true, livePath: '/usr/sbin/nginx', replaced: false }
  it('runs a root-owned file through sudo', () => {
    expect(masterExeRun(facts(0, 0), live)).toEqual({ path: '/proc/9/exe', sudo: true })
  })
  it("runs the deploy user's file as the deploy user: through /proc when the master is its, else by path", () => {
    expect(masterExeRun(facts(DEPLOY, DEPLOY), live)).toEqual({ path: '/proc/9/exe', sudo: false })
    expect(masterExeRun(facts(DEPLOY, 0), live)).toEqual({ path: '/usr/sbin/nginx', sudo: false })
    expect(masterExeRun(facts(DEPLOY, 0), { ...live, replaced: true })).toHaveProperty('skip')
  })
  it("never runs another user's file", () => {
    expect(masterExeRun(facts(OTHER, OTHER), live)).toEqual({
      skip: "it belongs to mallory (uid 1002); the action does not run it with another user's rights"
    })
  })
})

describe('refuseUnclearedExe: the host layer runs a process executable with sudo only with its clearance', () => {
  const facts = parseTrust(probeOutput(), 9)
  const live = { sudo: true, livePath: '/usr/sbin/nginx', replaced: false }
  it('refuses /proc/<pid>/exe through sudo without a clearance, or with a look-alike object', () => {
    expect(() => refuseUnclearedExe(['/proc/9/exe', '-v'], { sudo: true })).toThrow(
      'refused to run /proc/9/exe with sudo: its owner was not checked'
    )
    expect(() =>
      refuseUnclearedExe(['/proc/9/exe', '-v'], { sudo: true, exe: { path: '/proc/9/exe', sudo: true } })
    ).toThrow('its owner was not checked')
  })
  it("refuses a clearance given for another process's executable", () => {
    const other = masterExeRun(parseTrust(probeOutput(), 10), live)
    expect(() => refuseUnclearedExe(['/proc/9/exe', '-v'], { sudo: true, exe: other })).toThrow(
      'its owner was not checked'
    )
  })
  it('lets a cleared run through, and anything without sudo', () => {
    const how = masterExeRun(facts, live)
    expect(() => refuseUnclearedExe(['/proc/9/exe', '-v'], { sudo: true, exe: how })).not.toThrow()
    expect(() => refuseUnclearedExe(['/proc/9/exe', '-v'], {})).not.toThrow()
    expect(() => refuseUnclearedExe(['sha256sum', '--', '/proc/9/exe'], { sudo: true })).not.toThrow()
  })
})
