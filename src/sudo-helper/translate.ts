/**
 * The one place where a privileged command becomes a call of the sudo helper. Every command the
 * action runs with `sudo` is an argv of a known shape (a fixed command, or `sh -c SCRIPT sh ARGS`
 * with one of the action's scripts); this maps it to `HELPER SUB-COMMAND ARGS`, or refuses a
 * shape the helper has no sub-command for (a server or strategy the helper does not cover).
 */
import { HELPER_SCRIPTS, NGINX_WATCHDOG } from './scripts.js'

/** A privileged command the helper has no sub-command for. */
export class HelperUnsupportedError extends Error {
  constructor(argv: readonly string[]) {
    super(
      `the sudo helper has no sub-command for \`${argv.slice(0, 3).join(' ').slice(0, 120)}\`: sudo-helper covers the nginx hot upgrade, ` +
        `its rollback and its release store. Deploy this server with sudo-helper empty (sudo: true runs commands through plain sudo -n)`
    )
    this.name = 'HelperUnsupportedError'
  }
}

const BY_SCRIPT = new Map(Object.entries(HELPER_SCRIPTS).map(([sub, text]) => [text, sub]))

/** Fixed commands: the argv's words before its operands, and the sub-command taking those operands. */
const FIXED: readonly [readonly string[], string, number][] = [
  [['rm', '-f', '--'], 'rm', 1],
  [['rm', '-rf', '--'], 'rm-release', 1],
  [['rmdir', '--'], 'rmdir', 1],
  [['mkdir', '-p', '--'], 'mkdir', 1],
  [['cp', '--'], 'cp', 2],
  [['ln', '--'], 'ln', 2],
  [['ln', '-f', '--'], 'ln-keep', 2],
  [['mv', '-f', '--'], 'mv', 2],
  [['chmod', '0755', '--'], 'chmod', 1],
  [['sha256sum', '--'], 'sha256', 1],
  [['head', '-c', '2', '--'], 'head2', 1]
]

const startsWith = (argv: readonly string[], head: readonly string[]) => head.every((w, i) => argv[i] === w)

/** The helper's sub-command and arguments for a command that `sudo: true` would run as argv. */
export function helperArgs(argv: readonly string[]): string[] {
  if (argv.length === 1 && argv[0] === 'config') return ['config'] // what the helper allows (check.ts)
  for (const [head, sub, operands] of FIXED)
    if (argv.length === head.length + operands && startsWith(argv, head))
      return [sub, ...argv.slice(head.length)]
  if (argv.length === 5 && argv[0] === 'kill' && argv[1] === '-s' && argv[3] === '--')
    return ['kill', argv[2]!, argv[4]!]
  if (argv[0] === 'sh' && argv[1] === '-c' && argv[3] === 'sh') {
    const sub = BY_SCRIPT.get(argv[2]!)
    const args = argv.slice(4)
    // The launch's first argument is the watchdog script: the helper runs its own copy of nginx's.
    if (sub === 'watchdog-launch' && args[0] === NGINX_WATCHDOG) return [sub, ...args.slice(1)]
    if (sub !== undefined && sub !== 'watchdog-launch') return [sub, ...args]
  }
  if (argv[0]?.startsWith('/')) {
    if (argv.length === 2 && argv[1] === '-v') return ['version', argv[0]]
    if (argv[1] === '-T') return ['config-test', argv[0], ...argv.slice(2)]
  }
  throw new HelperUnsupportedError(argv)
}
