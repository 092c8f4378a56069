/**
 * Before a host is touched: the helper at the sudo-helper path is the one this version of the
 * action speaks to (same sha256: the helper is generated from the action's scripts), the deploy
 * user may run it through `sudo -n`, and its config names this run's pid file.
 */
import { SudoPasswordError, type Host } from '../host/host.js'
import { remoteLine } from '../remote-text.js'
import { helperArgs } from './translate.js'
import { helperSha256 } from './render.js'
import { HELPER_CONF } from './policy.js'

/** The words after `sudo -n --` for a privileged argv: the helper and its sub-command. */
export function throughHelper(path: string): (argv: readonly string[]) => readonly string[] {
  return argv => [path, ...helperArgs(argv)]
}

/** The helper cannot serve this run on a host (says what to fix; no connection hint). */
export class SudoHelperError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SudoHelperError'
  }
}

const INSTALL = (path: string) =>
  `Install this version's helper as root: install -o root -g root -m 0755 -D zerodown-sudo ${path} (the file host/zerodown-sudo of the action at the ref you use; docs/sudo.md)`

/** Throws, naming the host, the problem and the fix, when the helper cannot serve this run. */
export async function checkHelper(
  host: Host,
  path: string,
  o: { pidFile: string; binaryPath?: string; releaseDir?: string }
): Promise<void> {
  const expected = helperSha256()
  const r = await host.run(['sha256sum', '--', path])
  const got = r.code === 0 ? (r.stdout.trim().split(/\s+/)[0] ?? '') : null
  if (got === null)
    throw new SudoHelperError(
      `${host.name}: sudo-helper ${path} cannot be read on the host. ${INSTALL(path)}`
    )
  if (got !== expected)
    throw new SudoHelperError(
      `${host.name}: sudo-helper ${path} is not the helper of this version of the action (sha256 ${got.slice(0, 12)}, expected ${expected.slice(0, 12)}). ${INSTALL(path)}`
    )
  // sudo's own refusal (no rule for the deploy user) is this check's failure too, with its fix.
  const c = await host.run(['config'], { sudo: true }).catch((e: Error) => {
    if (!(e instanceof SudoPasswordError)) throw e
    return {
      code: 1,
      stdout: '',
      stderr: 'sudo asked for a password: no NOPASSWD rule lets the deploy user run it'
    }
  })
  const detail = remoteLine((c.stderr || c.stdout).trim().split('\n').slice(-2).join(' | '))
  if (c.code !== 0)
    throw new SudoHelperError(
      `${host.name}: the sudo helper does not run (sudo -n ${path} config: ${detail || `status ${c.code}`}). ` +
        `The deploy user needs the sudoers line of docs/sudo.md, and ${HELPER_CONF} a line for this server`
    )
  // What this run names must be in the config (a binary or store it learns on the host is
  // checked by the helper itself, when it is used).
  const lines = c.stdout.split('\n')
  const wanted: [string, string, string | undefined, string][] = [
    ['pid-file', 'pid file', o.pidFile, `'server BINARY ${o.pidFile} [STORE]'`],
    ['binary', 'binary', o.binaryPath, `'server ${o.binaryPath} PID-FILE [STORE]'`],
    ['store', 'release store', o.releaseDir, `'server BINARY PID-FILE ${o.releaseDir}'`]
  ]
  for (const [key, what, value, line] of wanted)
    if (value !== undefined && !lines.includes(`${key} ${value}`))
      throw new SudoHelperError(
        `${host.name}: the sudo helper's config ${HELPER_CONF} names no ${what} ${value}. Add the line ${line} for this server, as root`
      )
}
