/**
 * Issue #13, item 3: text from a host never becomes a workflow command, a terminal escape or
 * Markdown. A real sandbox host (127.0.0.171) sends it: a health command that prints runner
 * commands (or 16 MB), and a state.json whose release records carry a link and an image.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'

let sb: Sandbox
let h: SandboxHost
let dir: string

beforeAll(() => {
  sb = sandboxUp({ first: 171, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-remote-text-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** Lines the runner would take for commands: `::name::` at the start (after blanks), `##[` anywhere. */
function commandLines(log: string): string[] {
  const ours = /^::(add-mask|group|endgroup|error|warning|notice|debug)( [^:]*)?::/
  return (
    log
      .split('\n')
      .filter(l => /^\s*::/.test(l) || l.includes('##['))
      // Our own annotations carry the (neutralised) text as escaped command data: they are not injected.
      // The injected mask is matched whole: our own masks of the SSH key's lines may start with "ok".
      .filter(l => !ours.test(l) || /^::add-mask::ok$|^::stop-commands::/.test(l))
  )
}

describe('remote text in the log and the job summary', () => {
  it('a health command that prints runner commands adds no annotation, mask or stop-commands', async () => {
    const payload = [
      'first line',
      '::error title=host::injected annotation',
      '::add-mask::ok',
      '  ::stop-commands::injected-token',
      'x ##[error]injected legacy command',
      '\u001b]8;;https://evil.example\u0007link\u001b]8;;\u0007 \u001b[2J'
    ].join('\n')
    writeFileSync(sb.hostPath(h, '/srv/app/health.txt'), payload)
    const run = await runAction({
      ...sandboxInputs(sb, [h]),
      binary: nginxBuild(dir, 'text'),
      'health-command': 'cat /srv/app/health.txt; exit 1',
      'health-checks': '1',
      'health-timeout': '2s'
    })
    if (process.env.ZD_SHOW_LOG) console.log(run.log)
    expect(run.code).toBe(1)
    expect(run.log).toContain('injected annotation') // the text is shown, as text
    expect(commandLines(run.log)).toEqual([])
    expect(run.log).not.toMatch(/\u001b/)
    expect(run.outputs.report).not.toMatch(/\\u001b/)
  })

  it('a health command that prints 16 MB passes its gate: remote output is read in linear time (item 5)', async () => {
    const run = await runAction({
      ...sandboxInputs(sb, [h]),
      binary: nginxBuild(dir, 'big'),
      'health-command': "head -c 16000000 /dev/zero | tr '\\0' x",
      'health-checks': '1'
    })
    if (process.env.ZD_SHOW_LOG) console.log(run.log.slice(-3000))
    expect(run.code).toBe(0)
    expect(run.outputs.result).toBe('upgraded')
  })

  it('the job summary shows links and images from state.json as text', async () => {
    // A first deploy makes the store; then its records are changed on the host.
    const first = await runAction({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'one') })
    expect(first.code).toBe(0)
    const statePath = sb.hostPath(h, '/var/lib/zerodown/nginx/state.json')
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as {
      releases: Record<string, unknown>[]
    }
    expect(state.releases.length).toBeGreaterThanOrEqual(2)
    state.releases[0]!.runUrl = 'https://evil.example/phish'
    delete state.releases[1]!.runUrl
    state.releases[1]!.runId = '![pixel](https://evil.example/track.png) **bold** <b>x</b>'
    writeFileSync(statePath, JSON.stringify(state))
    const run = await runAction({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'two') })
    expect(run.code).toBe(0)
    expect(run.summary).toContain('### Releases on')
    expect(run.summary).not.toMatch(/\]\(https:\/\/evil\.example/)
    expect(run.summary).not.toMatch(/\*\*bold\*\*/)
    expect(run.summary).not.toMatch(/https:\/\/evil\.example/) // no autolink either
    expect(run.summary).toMatch(/evil\.example/)
  })
})
