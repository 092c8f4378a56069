/** The command line's help: every input as a flag, or one command's usage and the flags that apply to it. */
import { isBoolean, RUNS, type Command } from './cli-args.js'
import { INPUTS } from './inputs.js'

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
  'rollback-to': ['rollback'],
  hold: ['deploy'],
  'hold-timeout': ['deploy']
}

/**
 * What commit and abort do not use: they finish hosts a hot upgrade left held, one run for the
 * whole fleet (no batches, no new watchdog, no load balancer).
 */
const NOT_FINISHING = new Set([
  'canary',
  'rollback-fleet',
  'prestage',
  'idle-connections',
  'watchdog',
  'strategy',
  'upstream-host',
  'upstream-file',
  'upstream-name',
  'upstream-server',
  'restart-command',
  'canary-weight',
  'canary-duration',
  'max-error-rate',
  'upstream-watchdog-lease'
])

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

function applies(input: string, command: Command): boolean {
  const only = ONLY[input]
  if (only) return only.includes(command)
  if (command === 'status') return STATUS_INPUTS.has(input)
  if (command === 'commit' || command === 'abort') return !NOT_FINISHING.has(input)
  return true
}

const KEYS = '--private-key-file KEY --known-hosts-file FILE [options]'
const USAGE: Record<Command, string> = {
  deploy: `zerodown-action deploy --hosts HOSTS --binary FILE ${KEYS}`,
  rollback: `zerodown-action rollback --hosts HOSTS ${KEYS}`,
  plan: `zerodown-action plan --hosts HOSTS --binary FILE ${KEYS}`,
  status: `zerodown-action status --hosts HOSTS ${KEYS}`,
  commit: `zerodown-action commit --hosts HOSTS ${KEYS}`,
  abort: `zerodown-action abort --hosts HOSTS ${KEYS}`
}

const ABOUT: Record<Command, string> = {
  deploy: 'Hot-upgrade the hosts to the binary FILE built on this machine.',
  rollback:
    "Hot-upgrade the hosts back to the release before the live one (or --rollback-to VERSION), from each host's own release store.",
  plan: 'Say what a deploy of FILE would do on each host (versions, downgrade, unchanged, refusals) and change nothing: pre-flight, and FILE staged beside the live binary, config-tested and removed again. Exit status 0 when every host would upgrade or is unchanged, 1 when a deploy would be refused on any host.',
  status:
    'List what each host runs (pid, binary, the sha256 of /proc/<pid>/exe, version) and its release store (the live release, the one a rollback would go to). Changes nothing.',
  commit:
    'Finish the hosts a `deploy --hold` run (one per shard) left held: retire each old process and keep the new release. Give every host of the fleet; a host with nothing held is reported unchanged. Exit status 0 when every held host was committed.',
  abort:
    'Return every host a `deploy --hold` run left held to its original process and previous binary. Give every host of the fleet; a host with nothing held is reported unchanged. Exit status 0 when every held host is back. Ctrl-C lets the hosts being finished complete and starts no other: those stay held (their watchdog returns them at hold-timeout), exit status 1.'
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
    'commit, abort: 0 when every held host was finished (or nothing was held), 1 otherwise (a cancelled run too).',
    ''
  ].join('\n')
}
