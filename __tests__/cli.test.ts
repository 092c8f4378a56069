/**
 * The command line: flags named after the inputs, environment variables, --<input>-file, --help
 * listing every input of action.yml, exit statuses, and real upgrades through the bundle
 * (`node dist/index.js deploy ...` under Node 24) against a sandbox host on 127.0.0.74.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { envName, inputReader, parseArgs, UsageError } from '../src/cli.js'
import { helpText } from '../src/cli-help.js'
import { readSettings } from '../src/settings.js'
import { httpGet, sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { brokenBuild, nginxBuild, NODE24, ROOT, scratchDir } from './helpers/action.js'

const actionInputs = Object.keys(
  (parse(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as { inputs: Record<string, unknown> }).inputs
)

interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the bundle with arguments, as a user would in a terminal (no GITHUB_* variables). */
function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<CliRun> {
  return new Promise(resolve => {
    const child = spawn(NODE24, [join(ROOT, 'dist/index.js'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env }
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', d => (stdout += d))
    child.stderr.on('data', d => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', code => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

describe('arguments (unit)', () => {
  it('maps flags to inputs: --name value, --name=value, booleans, --no-x, lists, the command as mode', () => {
    const a = parseArgs([
      'deploy',
      '--hosts',
      'web1',
      '--hosts=web2:2222',
      '--health-url',
      'http://127.0.0.1/health',
      '--sudo',
      '--no-watchdog',
      '--insecure-skip-host-key-check=false',
      '--drain-timeout',
      '2m',
      '--json'
    ])
    expect(a.command).toBe('deploy')
    expect(a.json).toBe(true)
    expect(Object.fromEntries(a.values)).toEqual({
      hosts: 'web1\nweb2:2222',
      'health-url': 'http://127.0.0.1/health',
      sudo: 'true',
      watchdog: 'false',
      'insecure-skip-host-key-check': 'false',
      'drain-timeout': '2m',
      mode: 'deploy'
    })
    // A boolean flag takes the next word only when it is a boolean.
    expect(parseArgs(['--sudo', 'false', '--hosts', 'a']).values.get('sudo')).toBe('false')
    expect(parseArgs(['--sudo', '--hosts', 'a']).values.get('sudo')).toBe('true')
    expect(parseArgs(['rollback', '--hosts', 'a']).values.get('mode')).toBe('rollback')
  })

  it('--<input>-file reads the value from a file; secrets in flags are noted', () => {
    const dir = scratchDir('zerodown-cli-unit-')
    try {
      writeFileSync(join(dir, 'key'), 'KEY-TEXT\n')
      const a = parseArgs(['--private-key-file', join(dir, 'key'), '--password', 'pw'])
      expect(a.values.get('private-key')).toBe('KEY-TEXT\n')
      expect(a.secretsInFlags).toEqual(['--password'])
      expect(() => parseArgs(['--known-hosts-file', join(dir, 'missing')])).toThrow(
        /--known-hosts-file .*missing: cannot read the file \(ENOENT\)/
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses what it does not understand, with the fix', () => {
    const bad: [string[], RegExp][] = [
      [['--helth-url', 'x'], /unknown option --helth-url \(did you mean --health-url\?\)/],
      [['upgrade'], /unknown command 'upgrade': use deploy, rollback, plan, status, commit, abort or --help/],
      [['deploy', 'web1'], /unexpected argument 'web1'/],
      [['--hosts'], /--hosts needs a value/],
      [['--hosts', '--sudo'], /--hosts needs a value/],
      [['--port', '22', '--port', '23'], /--port is given twice/],
      [['deploy', '--mode', 'rollback'], /contradicts the command deploy/]
    ]
    for (const [argv, message] of bad) {
      expect(() => parseArgs(argv)).toThrow(UsageError)
      expect(() => parseArgs(argv)).toThrow(message)
    }
  })

  it('reads a flag, else ZERODOWN_<INPUT> (or its _FILE), else the default of action.yml; readSettings validates', () => {
    const dir = scratchDir('zerodown-cli-unit-')
    try {
      writeFileSync(join(dir, 'kh'), '[web1]:2222 ssh-ed25519 AAAA\n')
      const read = inputReader(parseArgs(['--hosts', 'zd@web1:2222', '--port', '2200']), {
        ZERODOWN_PORT: '99',
        ZERODOWN_HEALTH_URL: 'http://127.0.0.1:8080/health',
        ZERODOWN_KNOWN_HOSTS_FILE: join(dir, 'kh')
      })
      expect(read('port')).toBe('2200')
      expect(read('health-url')).toBe('http://127.0.0.1:8080/health')
      expect(read('known-hosts')).toBe('[web1]:2222 ssh-ed25519 AAAA\n')
      expect(read('pid-file')).toBe('') // per supervisor: nginx's /run/nginx.pid when empty
      expect(read('binary')).toBe('')
      expect(envName('insecure-skip-host-key-check')).toBe('ZERODOWN_INSECURE_SKIP_HOST_KEY_CHECK')
      // The same validation as in GitHub: no key and no password.
      expect(() => readSettings(read)).toThrow(
        /Input 'private-key': is empty, no password is given and no ssh-agent is running/
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('commands, --version, --help per command, --verbose (unit)', () => {
  it("--version before any command is the program's; after a command it is the version input", () => {
    expect(parseArgs(['--version']).command).toBe('version')
    expect(parseArgs(['--hosts', 'web1', '--version']).command).toBe('version')
    const a = parseArgs(['deploy', '--version', '1.27.3', '--hosts', 'web1'])
    expect(a.command).toBe('deploy')
    expect(a.values.get('version')).toBe('1.27.3')
  })

  it("--help after a command, or help COMMAND, asks for that command's flags; --verbose is a switch", () => {
    expect(parseArgs(['deploy', '--help'])).toMatchObject({ command: 'help', helpFor: 'deploy' })
    expect(parseArgs(['rollback', '-h'])).toMatchObject({ command: 'help', helpFor: 'rollback' })
    expect(parseArgs(['help', 'rollback'])).toMatchObject({ command: 'help', helpFor: 'rollback' })
    expect(parseArgs(['--help']).helpFor).toBeUndefined()
    expect(parseArgs(['deploy', '--verbose', '--hosts', 'web1']).verbose).toBe(true)
    expect(parseArgs(['deploy', '--hosts', 'web1']).verbose).toBe(false)
  })
})

describe('commit and abort: the commands that finish a held fleet (unit)', () => {
  it('are commands like rollback: the mode input, their own --help', () => {
    expect(parseArgs(['commit', '--hosts', 'web1']).values.get('mode')).toBe('commit')
    expect(parseArgs(['abort', '--hosts', 'web1,web2', '--shard', '1/2']).values.get('mode')).toBe('abort')
    expect(parseArgs(['abort', '--help'])).toMatchObject({ command: 'help', helpFor: 'abort' })
    expect(parseArgs(['help', 'commit'])).toMatchObject({ command: 'help', helpFor: 'commit' })
    expect(() => parseArgs(['abort', '--mode', 'commit'])).toThrow(
      /--mode commit contradicts the command abort/
    )
    expect(() => parseArgs(['--mode', 'deploy', 'commit'])).toThrow(/unexpected argument 'commit'/)
  })

  it('refuse the inputs that make no sense with them, naming the input and the fix, before any host', () => {
    const dir = scratchDir('zerodown-cli-unit-')
    try {
      writeFileSync(join(dir, 'kh'), '[web1]:2222 ssh-ed25519 AAAA\n')
      const settings = (argv: string[]) => () =>
        readSettings(
          inputReader(parseArgs([...argv, '--hosts', 'web1:2222', '--known-hosts-file', join(dir, 'kh')]), {
            ZERODOWN_PASSWORD: 'pw'
          })
        )
      expect(settings(['abort', '--binary', '/bin/sh'])).toThrow(
        /Input 'binary': is set but mode is abort.*sends no binary; remove binary/
      )
      expect(settings(['commit', '--version', '1.2.3'])).toThrow(/Input 'version': is set but mode is commit/)
      expect(settings(['commit', '--hold'])).toThrow(/Input 'hold': is true but mode is commit/)
      expect(settings(['abort', '--rollback-to', '1.2.3'])).toThrow(
        /Input 'rollback-to': is set but mode is not rollback/
      )
      expect(settings(['abort', '--strategy', 'upstream'])).toThrow(/upstream/)
      expect(settings(['commit'])().mode).toBe('commit')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('--help of commit and abort lists how to reach the hosts, not a binary or a hold', () => {
    const flags = (text: string) => [...text.matchAll(/^ {2}--([A-Za-z-]+)/gm)].map(m => m[1]!)
    for (const command of ['commit', 'abort'] as const) {
      const text = helpText(command)
      expect(text).toContain(`zerodown-action ${command} --hosts HOSTS`)
      expect(flags(text)).toEqual(
        expect.arrayContaining(['hosts', 'shard', 'pid-file', 'release-dir', 'lock-lease'])
      )
      for (const f of [
        'binary',
        'version',
        'allow-downgrade',
        'rollback-to',
        'hold',
        'hold-timeout',
        'canary',
        'mode'
      ])
        expect([command, flags(text)]).toEqual([command, expect.not.arrayContaining([f])])
    }
    expect(helpText()).toMatch(/^ {2}zerodown-action abort --hosts HOSTS/m)
    expect(helpText()).toMatch(/commit, abort: 0 when every held host was finished/)
  })
})

describe('the bundle as a command line', () => {
  it('--help lists every input of action.yml, the conveniences and the exit statuses', async () => {
    const r = await runCli(['--help'])
    expect(r.code).toBe(0)
    for (const name of actionInputs) expect(r.stdout).toMatch(new RegExp(`^  --${name}\\b`, 'm'))
    expect(r.stdout).toContain('--INPUT-file FILE')
    expect(r.stdout).toContain('ZERODOWN_HEALTH_URL')
    expect(r.stdout).toMatch(/--json/)
    expect(r.stdout).toMatch(/Exit status: 0 upgraded or unchanged; 1 rolled back or failed; 2 bad flags/)
    expect(r.stdout).not.toMatch(/^::/m)
  })

  it('--version prints the version of package.json (the release being made)', async () => {
    const r = await runCli(['--version'])
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    expect(r).toEqual({ code: 0, stdout: `zerodown-action ${version}\n`, stderr: '' })
  })

  it("deploy --help and rollback --help show each command's flags only", async () => {
    const flags = (text: string) => [...text.matchAll(/^ {2}--([A-Za-z-]+)/gm)].map(m => m[1]!)
    const deploy = await runCli(['deploy', '--help'])
    expect(deploy.code).toBe(0)
    expect(deploy.stdout).toContain('zerodown-action deploy --hosts HOSTS --binary FILE')
    expect(flags(deploy.stdout)).toEqual(
      expect.arrayContaining(['hosts', 'binary', 'version', 'allow-downgrade'])
    )
    expect(flags(deploy.stdout)).not.toContain('rollback-to')
    expect(flags(deploy.stdout)).not.toContain('mode')
    const rollback = await runCli(['help', 'rollback'])
    expect(rollback.code).toBe(0)
    expect(flags(rollback.stdout)).toContain('rollback-to')
    for (const f of ['binary', 'version', 'allow-downgrade', 'mode'])
      expect(flags(rollback.stdout)).not.toContain(f)
    // Every input is in one of them, or is the command itself.
    expect(new Set([...flags(deploy.stdout), ...flags(rollback.stdout), 'mode'])).toEqual(
      new Set([...actionInputs, 'INPUT-file', 'hosts', 'json', 'summary', 'verbose'])
    )
  })

  it("a bare run outside GitHub prints the help, not the action's ::save-state lines", async () => {
    const r = await runCli([])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('Usage:')
    expect(r.stdout).toContain('zerodown-action deploy --help')
    expect(r.stdout + r.stderr).not.toMatch(/^::/m)
    expect(r.stderr).toBe('')
  })

  it('exits 2 on a bad flag or a bad input, before any connection; --json still prints JSON', async () => {
    const flag = await runCli(['deploy', '--hostz', 'a'])
    expect(flag.code).toBe(2)
    expect(flag.stderr).toContain('unknown option --hostz (did you mean --hosts?)')
    const input = await runCli(['deploy', '--hosts', 'web1', '--binary', '/bin/sh', '--json'], {
      ZERODOWN_PRIVATE_KEY: 'not a key'
    })
    expect(input.code).toBe(2)
    expect(input.stderr).toContain("Input 'private-key': is not a private key")
    expect(JSON.parse(input.stdout)).toEqual({
      result: 'failed',
      error: expect.stringContaining('private-key')
    })
    // The value of a secret is never printed.
    expect(input.stderr + input.stdout).not.toContain('not a key')
  })
})

describe('upgrades through the command line (sandbox 127.0.0.74)', () => {
  let sb: Sandbox
  let h: SandboxHost
  let dir: string
  beforeAll(() => {
    sb = sandboxUp({ first: 74, count: 1 })
    h = sb.hosts[0]!
    dir = scratchDir('zerodown-cli-')
  })
  afterAll(() => {
    sb?.down()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const common = () => [
    '--hosts',
    `${sb.user}@${h.address}:${h.sshPort}`,
    '--known-hosts-file',
    sb.knownHostsPath,
    '--health-url',
    `http://{host}:${h.httpPort}/health`,
    '--health-interval',
    '200ms',
    '--poll-interval',
    '100ms'
  ]

  it('deploy: a real hot upgrade, exit 0, the JSON report on stdout, logs on stderr, the Markdown summary', async () => {
    const before = sb.readPid(h)!
    const summary = join(dir, 'summary.md')
    const build = nginxBuild(dir, 'cli-ok')
    const r = await runCli([
      'deploy',
      ...common(),
      '--private-key-file',
      sb.privateKeyPath,
      '--binary',
      build,
      '--summary',
      summary,
      '--json'
    ])
    expect(r.code).toBe(0)
    const report = JSON.parse(r.stdout)
    expect(report.result).toBe('upgraded')
    const [host] = report.hosts
    expect(host.oldPid).toBe(before)
    // The host really serves from the new master, running the new file.
    expect(sb.readPid(h)).toBe(host.newPid)
    expect(sb.isAlive(before)).toBe(false)
    expect((await httpGet(h.address, h.httpPort, '/health')).status).toBe(200)
    expect(readFileSync(sb.hostPath(h, '/srv/app/sbin/nginx')).equals(readFileSync(build))).toBe(true)
    // Steps as headings in the log; no GitHub workflow commands outside GitHub.
    expect(r.stderr).toMatch(/── \S+: preflight/)
    expect(r.stderr).toMatch(/✓ \S+ \[quit\] ok in/)
    expect(r.stderr).not.toMatch(/^::/m)
    expect(readFileSync(summary, 'utf8')).toMatch(/```mermaid\ngantt\n/)
  })

  it('Ctrl-C (SIGINT) during the health gate rolls the host back before the command exits', async () => {
    const before = sb.readPid(h)!
    const liveBefore = readFileSync(sb.hostPath(h, '/srv/app/sbin/nginx'))
    const build = nginxBuild(dir, 'cli-ctrl-c')
    const args = ['deploy', ...common(), '--private-key-file', sb.privateKeyPath, '--binary', build]
    args.push('--health-checks', '50', '--health-timeout', '60s')
    const child = spawn(NODE24, [join(ROOT, 'dist/index.js'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' }
    })
    let out = ''
    let interrupted = false
    const onData = (d: Buffer) => {
      out += d.toString()
      // Interrupt once the gate has judged the new binary a few times: the new master serves.
      if (!interrupted && /\[health\] check 3: pass/.test(out)) {
        interrupted = true
        child.kill('SIGINT')
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    const code = await new Promise<number | null>(r => child.on('close', c => r(c)))
    clearTimeout(timer)
    expect(interrupted).toBe(true)
    expect(code).toBe(1)
    expect(out).toMatch(/received SIGINT/)
    expect(out).toMatch(/rolled-back/)
    // The host is back on its original master and binary, serving.
    expect(sb.readPid(h)).toBe(before)
    expect(readFileSync(sb.hostPath(h, '/srv/app/sbin/nginx')).equals(liveBefore)).toBe(true)
    expect(existsSync(sb.hostPath(h, '/run/nginx.pid.oldbin'))).toBe(false)
    expect((await httpGet(h.address, h.httpPort, '/health')).status).toBe(200)
  })

  it('deploy from the environment (ZERODOWN_PRIVATE_KEY): a broken build is rolled back, exit 1', async () => {
    const before = sb.readPid(h)!
    const broken = brokenBuild(dir, 'cli-exit', 'exit 1')
    const r = await runCli(['deploy', ...common(), '--binary', broken], {
      ZERODOWN_PRIVATE_KEY: sb.privateKey()
    })
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/zerodown: rolled-back in /)
    expect(r.stdout).toMatch(new RegExp(`${sb.user}@${h.address}:${h.sshPort}: rolled-back at usr2`))
    expect(r.stderr).toMatch(/^error: .*usr2 failed: /m)
    expect(sb.readPid(h)).toBe(before)
    expect((await httpGet(h.address, h.httpPort, '/health')).status).toBe(200)
    // The key came from the environment and is printed nowhere.
    const keyLine = sb.privateKey().split('\n')[1]!
    expect(r.stdout + r.stderr).not.toContain(keyLine)
  })
})
