/**
 * The `mode` input: what a run does. deploy and rollback change the hosts; plan and status only
 * read them (plan also stages and checks the new binary beside the live one, then removes it).
 * Refuses the inputs a mode cannot use, before any host is touched.
 */
import { SettingsError, type Settings } from './types.js'

export const MODES = ['deploy', 'rollback', 'plan', 'status', 'commit', 'abort'] as const
export type Mode = (typeof MODES)[number]

/** The modes that change nothing on a host. */
export type ReadOnlyMode = Extract<Mode, 'plan' | 'status'>
export const isReadOnlyMode = (mode: Mode): mode is ReadOnlyMode => mode === 'plan' || mode === 'status'

/** What plan and status refuse; deploy and rollback are checked in settings.ts. */
export function checkMode(s: Settings): void {
  if (!isReadOnlyMode(s.mode)) return
  if (s.strategy === 'upstream')
    throw new SettingsError(
      'mode',
      `${s.mode} is not available with strategy upstream (its hosts are judged through the load balancer, which ${s.mode} does not read)`,
      'Use mode: plan or status with strategy: hot-upgrade, or run mode: deploy'
    )
  if (s.mode === 'plan' && s.binary === undefined)
    throw new SettingsError(
      'binary',
      'is required when mode is plan',
      'Give the local path of the binary that a deploy would send'
    )
  if (s.mode === 'status') {
    if (s.binary !== undefined)
      throw new SettingsError(
        'binary',
        'is set but mode is status (status only reads the hosts)',
        'Remove binary, or set mode: plan'
      )
    if (s.version !== undefined)
      throw new SettingsError(
        'version',
        'is set but mode is status (status only reads the hosts)',
        'Remove version, or set mode: plan'
      )
  }
}
