/**
 * The sudo-helper input: privileged commands go through one root-owned program of fixed
 * sub-commands (host/zerodown-sudo) instead of `sudo sh -c`, so that the sudoers rule can name
 * that program alone. It covers the nginx hot upgrade (deploy, rollback, lock, watchdog, release
 * store) in mode deploy and rollback; anything else is refused here, before any host is touched.
 */
import { checkRemotePath, SettingsError, type InputReader, type Settings } from '../settings.js'

/** The helper's path on the hosts, or undefined (plain `sudo -n` when sudo is true). */
export function sudoHelperSetting(read: InputReader, s: Settings): string | undefined {
  const raw = read('sudo-helper').trim()
  if (raw === '') return undefined
  const path = checkRemotePath('sudo-helper', raw)
  const refuse = (problem: string, fix: string): never => {
    throw new SettingsError('sudo-helper', problem, fix)
  }
  if (!s.sudo) refuse('is set but sudo is false', 'Set sudo: true (the helper runs through sudo -n)')
  if (s.strategy !== 'hot-upgrade' || s.supervisor !== 'nginx')
    refuse(
      `covers the nginx hot upgrade only, not ${s.strategy === 'hot-upgrade' ? `supervisor ${s.supervisor}` : `strategy ${s.strategy}`}`,
      'Leave sudo-helper empty for this server (sudo: true then runs commands through plain sudo -n)'
    )
  // Only these runs were proven through the helper in the sandbox; the others issue commands
  // (a plan's own staging name, a held record, a commit's checks) outside its fixed set.
  if ((s.mode !== 'deploy' && s.mode !== 'rollback') || s.hold)
    refuse(
      `covers mode deploy and mode rollback only, not ${s.hold ? 'hold: true' : `mode ${s.mode}`}`,
      'Leave sudo-helper empty for this run (sudo: true then runs commands through plain sudo -n)'
    )
  if (s.verifyCommand !== undefined)
    refuse(
      'cannot run verify-command (a command of your own is not in its fixed set)',
      'Remove verify-command, or leave sudo-helper empty'
    )
  return path
}
