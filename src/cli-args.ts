/**
 * The command line's words: the command, --<input> flags (and --<input>-file, --no-<input>),
 * ZERODOWN_<INPUT> variables (the help is cli-help.ts). Every value goes through the same readSettings
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
export type Command = 'deploy' | 'rollback' | 'plan' | 'status' | 'commit' | 'abort'

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

export const RUNS: readonly Command[] = ['deploy', 'rollback', 'plan', 'status', 'commit', 'abort']
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

export const isBoolean = (spec: InputSpec) => spec.default === 'true' || spec.default === 'false'
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
    throw new UsageError(
      `unknown command '${command}': use deploy, rollback, plan, status, commit, abort or --help`
    )
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
  for (; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '-h' || arg === '--help') {
      if (isRun(args.command)) args.helpFor ??= commandGiven ? args.command : undefined
      args.command = 'help'
      continue
    }
    // Before a command, --version is the program's; after one, it is the `version` input.
    if (arg === '--version' && !commandGiven) return { ...args, command: 'version' }
    if (arg === '--json') args.json = true
    else if (arg === '--verbose') args.verbose = true
    else i = inputFlag(argv, i, args, commandGiven)
  }
  if (commandGiven && args.command !== 'help') {
    if (args.values.has('mode') && args.values.get('mode') !== args.command)
      throw new UsageError(`--mode contradicts the command ${args.command}; give one of them`)
    args.values.set('mode', args.command)
  }
  return args
}

/** Sets an input's value; a list input (hosts, ...) may be given again, any other only once. */
function setValue(args: CliArgs, name: string, value: string, flag: string): void {
  const before = args.values.get(name)
  if (before !== undefined && !LISTS.has(name)) throw new UsageError(`${flag} is given twice; give it once`)
  args.values.set(name, before !== undefined ? `${before}\n${value}` : value)
}

/**
 * The flag at argv[i]: an input (`--name value`, `--name=value`, a boolean alone, `--no-name`),
 * an input read from a file (`--name-file path`), or `--summary path`. Returns the index of the
 * flag's last word.
 */
function inputFlag(argv: readonly string[], i: number, args: CliArgs, commandGiven: boolean): number {
  const arg = argv[i]!
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
    return i
  }
  const negated = name.startsWith('no-') ? inputNamed(name.slice(3)) : undefined
  if (negated && isBoolean(negated) && inline === undefined) {
    setValue(args, negated.name, 'false', flag)
    return i
  }
  const spec = inputNamed(name)
  if (spec) {
    if (isBoolean(spec) && inline === undefined && !BOOL.test(argv[i + 1] ?? '')) {
      setValue(args, spec.name, 'true', flag)
      return i
    }
    const value = next()
    if (spec.name === 'mode' && commandGiven && value !== args.command)
      throw new UsageError(`--mode ${value} contradicts the command ${args.command}; give one of them`)
    if (SECRETS.has(spec.name)) args.secretsInFlags.push(flag)
    setValue(args, spec.name, value, flag)
    return i
  }
  const fileOf = name.endsWith('-file') ? inputNamed(name.slice(0, -5)) : undefined
  if (fileOf) {
    setValue(args, fileOf.name, readValueFile(flag, next()), flag)
    return i
  }
  const guess = closest(name)
  throw new UsageError(
    `unknown option ${flag}${guess ? ` (did you mean --${guess}?)` : ''}; run with --help for the list`
  )
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
