/** Inputs whose meaning or default depends on the supervisor. */
import { supervisorFor } from '../supervisors/index.js'
import { line, oneOf, remotePath } from './read.js'
import {
  type DrainTimeoutAction,
  type InputReader,
  SettingsError,
  type SupervisorKind,
  UPGRADE_SIGNALS,
  type UpgradeSignal
} from './types.js'

/** Whether the supervisor can keep its old process until the whole fleet passed (rollback-fleet's default). */
export function canHold(supervisor: SupervisorKind): boolean {
  return supervisorFor(supervisor).capabilities.canHold
}

export function pidFile(read: InputReader, supervisor: SupervisorKind): string {
  const value = remotePath(read, 'pid-file', supervisorFor(supervisor).defaultPidFile)
  if (value === undefined)
    throw new SettingsError(
      'pid-file',
      `is required with supervisor ${supervisor} (such servers have no usual pid file)`,
      'Give the file the server writes once it is ready (tableflip: its Options.PIDFile), e.g. /run/app.pid'
    )
  return value
}

export function upgradeSignal(read: InputReader, supervisor: SupervisorKind): UpgradeSignal {
  const value = (line(read, 'upgrade-signal') ?? 'HUP').toUpperCase().replace(/^SIG/, '')
  if (!(UPGRADE_SIGNALS as readonly string[]).includes(value))
    throw new SettingsError(
      'upgrade-signal',
      `'${value}' is not one of ${UPGRADE_SIGNALS.join(', ')}`,
      'Give the signal on which the server calls Upgrade() (HUP for most tableflip servers)'
    )
  if (value !== 'HUP' && supervisor !== 'tableflip')
    throw new SettingsError(
      'upgrade-signal',
      `is ${value}, but only supervisor tableflip takes it (${supervisor} has its own protocol)`,
      'Remove upgrade-signal, or set supervisor: tableflip'
    )
  return value as UpgradeSignal
}

/**
 * tableflip's old process stops accepting at the hand-over and exits by itself: after a slow drain
 * there is nothing to go back to without cutting its requests and handing over a second time.
 */
export function drainTimeoutAction(read: InputReader, supervisor: SupervisorKind): DrainTimeoutAction {
  const fallback = supervisor === 'tableflip' ? 'proceed' : 'rollback'
  const value = oneOf(read, 'drain-timeout-action', ['rollback', 'proceed'] as const, fallback)
  if (value === 'rollback' && supervisor === 'tableflip')
    throw new SettingsError(
      'drain-timeout-action',
      'is rollback, which supervisor tableflip cannot honour: its old process stopped accepting at the hand-over, and going back after a slow drain would cut its last requests and hand over a second time',
      "Set drain-timeout-action: proceed (the default for tableflip; the old process finishes on its own, within the server's shutdown timeout), or raise drain-timeout"
    )
  return value
}
