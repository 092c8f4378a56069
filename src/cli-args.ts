/**
 * The command line's words: the command, --<input> flags (and --<input>-file, --no-<input>),
 * ZERODOWN_<INPUT> variables, and the help text. Every value goes through the same readSettings
 * as in GitHub afterwards.
 */
import { readFileSync } from 'node:fs'
import { INPUTS, type InputSpec } from './inputs.js'
import type { InputReader } from './settings.js'

/** Bad command-line usage: nothing was touched. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** The commands that run: each is the `mode` input of the same name. */
export type Command = 'deploy' | 'rollback' | 'plan' | 'status'

export interface CliArgs {
  command: Command | 'help' | 'version'
  /** With --help after a command (`deploy --help`, `help deploy`): that command's flags only. */
  helpFor?: Command
  /** --verbose: every remote command, upload and health request, with its time. */
  verbose: boolean
  /** Input values given as flags (or read from --<input>-file), by input name. */
  values: Map<string, string>
  /** Inputs given on the command line in clear (secrets should come from a file or the environment). */
  secretsInFlags: string[]
  json: boolean
  summaryFile?: string
}

const RUNS: readonly Command[] = ['deploy', 'rollback', 'plan', 'status']
const COMMANDS = [...RUNS, 'help'] as const
const isRun = (word: string | undefined): word is Command => (RUNS as readonly string[]).includes(word ?? '')
/** Inputs that may be given more than once; the values are joined by newlines. */
const LISTS = new Set(['hosts', 'known-hosts', 'host-fingerprints'])
const SECRETS = new Set([
  'private-key',
  'passphrase',
  'password',
  'jump-private-key',
  'jump-passphrase',
  'jump-password'
])
const BOOL = /^(true|false|yes|no|on|off|1|0)$/i

const isBoolean = (spec: InputSpec) => spec.default === 'true' || spec.default === 'false'
export const envName = (input: string) => `ZERODOWN_${input.toUpperCase().replace(/-/g, '_')}`

function inputNamed(name: string): InputSpec | undefined {
  return INPUTS.find(i => i.name === name)
}

/** The closest input name, for "did you mean". */
function closest(name: string): string | undefined {
  let best: { name: string; d: number } | undefined
  for (const i of INPUTS) {
    const d = distance(name, i.name)
    if (d <= 2 && (!best || d < best.d)) best = { name: i.name, d }
  }
  return best?.name
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return row[b.length]!
}

function readValueFile(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (e) {
    throw new UsageError(`${flag} ${path}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? e})`)
  }
}

/** Parses the arguments after `node dist/index.js`. Throws UsageError. */
/** The command word, when argv starts with one; returns where the flags begin. */
function leadingCommand(argv: readonly string[], args: CliArgs): number {
  const command = argv[0]
  if (command === undefined || command.startsWith('-')) return 0
  if (!(COMMANDS as readonly string[]).includes(command))
    throw new UsageError(`unknown command '${command}': use deploy, rollback, plan, status or --help`)
  args.command = command as CliArgs['command']
  return 1
}

export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = {
    command: 'deploy',
    values: new Map(),
    secretsInFlags: [],
    json: false,
    verbose: false
  }
  let i = leadingCommand(argv, args)
  const commandGiven = i === 1
  if (args.command === 'help' && isRun(argv[1])) {
    args.helpFor = argv[1]
    i = 2
  }
  const set = (name: string, value: string, flag: string) => {
    const before = args.values.get(name)
    if (before !== undefined && !LISTS.has(name)) throw new UsageError(`${flag} is given twice; give it once`)
    args.values.set(name, before !== undefined ? `${before}\n${value}` : value)
  }
  for (; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '-h' || arg === '--help') {
      if (isRun(args.command)) args.helpFor ??= commandGiven ? args.command : undefined
      args.command = 'help'
      continue
    }
    // Before a command, --version is the program's; after one, it is the `version` input.
    if (arg === '--version' && !commandGiven) return { ...args, command: 'version' }
    if (arg === '--json') {
      args.json = true
      continue
    }
    if (arg === '--verbose') {
      args.verbose = true
      continue
    }
    if (!arg.startsWith('--') || arg === '--')
      throw new UsageError(
        `unexpected argument '${arg}': every value follows its flag (--hosts web1,web2); run with --help`
      )
    const eq = arg.indexOf('=')
    const flag = eq >= 0 ? arg.slice(0, eq) : arg
    const name = flag.slice(2)
    const inline = eq >= 0 ? arg.slice(eq + 1) : undefined
    const next = (): string => {
      if (inline !== undefined) return inline
      const value = argv[i + 1]
      if (value === undefined || (value.startsWith('--') && value.length > 2))
        throw new UsageError(`${flag} needs a value: ${flag} VALUE or ${flag}=VALUE`)
      i++
      return value
    }
    if (name === 'summary') {
      args.summaryFile = next()
      continue
    }
    const negated = name.startsWith('no-') ? inputNamed(name.slice(3)) : undefined
    if (negated && isBoolean(negated) && inline === undefined) {
      set(negated.name, 'false', flag)
      continue
    }
    const spec = inputNamed(name)
    if (spec) {
      if (isBoolean(spec) && inline === undefined && !BOOL.test(argv[i + 1] ?? '')) {
        set(spec.name, 'true', flag)
        continue
      }
      const value = next()
      if (spec.name === 'mode' && commandGiven && value !== args.command)
        throw new UsageError(`--mode ${value} contradicts the command ${args.command}; give one of them`)
      if (SECRETS.has(spec.name)) args.secretsInFlags.push(flag)
      set(spec.name, value, flag)
      continue
    }
    const fileOf = name.endsWith('-file') ? inputNamed(name.slice(0, -5)) : undefined
    if (fileOf) {
      const path = next()
      set(fileOf.name, readValueFile(flag, path), flag)
      continue
    }
    const guess = closest(name)
    throw new UsageError(
      `unknown option ${flag}${guess ? ` (did you mean --${guess}?)` : ''}; run with --help for the list`
    )
  }
  if (commandGiven && args.command !== 'help') {
    if (args.values.has('mode') && args.values.get('mode') !== args.command)
      throw new UsageError(`--mode contradicts the command ${args.command}; give one of them`)
    args.values.set('mode', args.command)
  }
  return args
}

/**
 * The InputReader of the command line: the flag, else ZERODOWN_<INPUT> (or ZERODOWN_<INPUT>_FILE,
 * a file to read), else the default of action.yml (as GitHub passes defaults), else ''.
 */
export function inputReader(args: CliArgs, env: NodeJS.ProcessEnv = process.env): InputReader {
  return name => {
    const flag = args.values.get(name)
    if (flag !== undefined) return flag
    const fromEnv = env[envName(name)]
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv
    const file = env[`${envName(name)}_FILE`]
    if (file) return readValueFile(`${envName(name)}_FILE`, file)
    return inputNamed(name)?.default ?? ''
  }
}

// ----------------------------------------------------------------------------------- help

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line ? `${line} ${word}` : word
  }
  if (line) lines.push(line)
  return lines.map((l, n) => (n === 0 ? l : indent + l))
}

/** Inputs that belong to some commands only; `mode` is the command itself. Others: every command but status. */
const ONLY: Record<string, readonly Command[]> = {
  mode: [],
  binary: ['deploy', 'plan'],
  version: ['deploy', 'plan'],
  'allow-downgrade': ['deploy', 'plan'],
  'rollback-to': ['rollback']
}

/** What status reads with: how to reach the hosts and find the server and its store. */
const STATUS_INPUTS = new Set([
  'hosts',
  'user',
  'port',
  'private-key',
  'passphrase',
  'password',
  'known-hosts',
  'host-fingerprints',
  'insecure-skip-host-key-check',
  'sudo',
  'connect-timeout',
  'binary-path',
  'supervisor',
  'pid-file',
  'master-user',
  'release-dir',
  'max-parallel',
  'jump-host',
  'jump-private-key',
  'jump-passphrase',
  'jump-password',
  'lock-lease'
])

const applies = (input: string, command: Command) =>
  ONLY[input]?.includes(command) ?? (command !== 'status' || STATUS_INPUTS.has(input))

const KEYS = '--private-key-file KEY --known-hosts-file FILE [options]'
const USAGE: Record<Command, string> = {
  deploy: `zerodown-action deploy --hosts HOSTS --binary FILE ${KEYS}`,
  rollback: `zerodown-action rollback --hosts HOSTS ${KEYS}`,
  plan: `zerodown-action plan --hosts HOSTS --binary FILE ${KEYS}`,
  status: `zerodown-action status --hosts HOSTS ${KEYS}`
}

const ABOUT: Record<Command, string> = {
  deploy: 'Hot-upgrade the hosts to the binary FILE built on this machine.',
  rollback:
    "Hot-upgrade the hosts back to the release before the live one (or --rollback-to VERSION), from each host's own release store.",
  plan: 'Say what a deploy of FILE would do on each host (versions, downgrade, unchanged, refusals) and change nothing: pre-flight, and FILE staged beside the live binary, config-tested and removed again. Exit status 0 when every host would upgrade or is unchanged, 1 when a deploy would be refused on any host.',
  status:
    'List what each host runs (pid, binary, the sha256 of /proc/<pid>/exe, version) and its release store (the live release, the one a rollback would go to). Changes nothing.'
}

/** The whole help (every input), or one command's: its usage and the flags that apply to it. */
export function helpText(topic?: Command): string {
  const col = 32
  const lead = ' '.repeat(col + 2)
  const pad = (s: string) => (s.length + 2 >= col ? `${s}\n${lead}` : s.padEnd(col))
  const shown = topic ? INPUTS.filter(i => applies(i.name, topic)) : INPUTS
  const inputs = shown.map(i => {
    const what = isBoolean(i) ? `--${i.name}` : `--${i.name} VALUE`
    const extra = i.required ? ' (required)' : i.default ? ` [default: ${i.default}]` : ''
    return `  ${pad(what)}${wrap(i.description + extra, 98 - col, lead).join('\n')}`
  })
  const usage = topic
    ? [`  ${USAGE[topic]}`, '', ...wrap(ABOUT[topic], 98, '')]
    : [
        ...RUNS.map(c => `  ${USAGE[c]}`),
        '  zerodown-action deploy --help     the flags of one command (or: help rollback, help plan, ...)',
        '  zerodown-action --version',
        '',
        'From a clone, `node dist/index.js` is the same program.'
      ]
  return [
    'zerodown: hot-upgrade a server binary (nginx) on hosts over SSH without dropping a request:',
    'upload, start of the new binary beside the old one, health gate, drain of the old workers, retire, and automatic rollback.',
    '',
    'Usage:',
    ...usage,
    '',
    'Every input of the GitHub Action is a flag (--name VALUE or --name=VALUE) or an environment',
    'variable ZERODOWN_NAME (dashes become underscores: ZERODOWN_HEALTH_URL). A flag wins over the',
    'environment; unset inputs take the defaults below. Boolean inputs: --sudo, --no-sudo, --sudo=false.',
    '',
    topic ? `Flags of ${topic}:` : 'Inputs:',
    ...inputs,
    '',
    'Conveniences:',
    `  ${pad('--INPUT-file FILE')}Read an input's value from FILE, e.g. --private-key-file ~/.ssh/deploy_key,`,
    `${lead}--known-hosts-file ~/.ssh/known_hosts (or ZERODOWN_PRIVATE_KEY_FILE=...).`,
    `${lead}Secrets belong in a file or the environment, not on the command line.`,
    `  ${pad('--hosts, --known-hosts')}May be given more than once.`,
    `  ${pad('--json')}Print the JSON report (the report output) on stdout; logs go to stderr.`,
    `  ${pad('--summary FILE')}Write the Markdown summary (as GitHub shows it) to FILE.`,
    `  ${pad('--verbose')}Show every remote command, upload and health request with its time`,
    `${lead}(also with RUNNER_DEBUG=1, as GitHub's debug logging sets it).`,
    `  ${pad('-h, --help')}This text.`,
    ...(topic ? [] : [`  ${pad('--version')}The version of zerodown-action (before any command).`]),
    '',
    'Exit status: 0 upgraded or unchanged; 1 rolled back or failed; 2 bad flags or inputs (no host was touched).',
    'plan: 0 when every host would upgrade or is unchanged, 1 when a deploy would be refused on any host.',
    'status: 0 when every host was read, 1 when any could not be.',
    ''
  ].join('\n')
}
