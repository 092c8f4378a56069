/**
 * Commands printed for people (repair advice, refusals), as they can run them with this run's
 * settings: as the SSH user, with `sudo` (sudo: true), or, with sudo-helper, as the helper's
 * sub-command: such a user's sudoers rule names the helper alone, so `sudo kill …` would be
 * refused. Plain and sudo forms keep their usual shape (`kill -HUP 42`); the helper's is what its
 * sub-command takes (`sudo /usr/local/libexec/zerodown/zerodown-sudo kill HUP 42`).
 */
import type { Host } from './host.js'
import { commandLine } from './quote.js'

/** A privileged command line for a person; `as root (…): …` when the helper has no sub-command for it. */
export function privilegedCommand(host: Pick<Host, 'sudo' | 'privileged'>, argv: readonly string[]): string {
  if (!host.sudo) return commandLine(argv)
  if (host.privileged === undefined) return `sudo ${commandLine(argv)}`
  try {
    return `sudo ${commandLine(host.privileged(argv))}`
  } catch {
    // Nothing this user may run through sudo does it: say that it needs root, not a sudo that fails.
    return `as root (the sudo helper has no sub-command for it): ${commandLine(argv)}`
  }
}

/** `kill -SIGNAL PIDS` for a person; the helper's kill takes one pid, so one call per pid. */
export function killCommand(
  host: Pick<Host, 'sudo' | 'privileged'>,
  signal: string,
  pids: readonly number[]
): string {
  if (!host.sudo || host.privileged === undefined)
    return `${host.sudo ? 'sudo ' : ''}kill -${signal} ${pids.join(' ')}`
  return pids.map(p => privilegedCommand(host, ['kill', '-s', signal, '--', String(p)])).join('; ')
}
