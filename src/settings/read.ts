/**
 * Readers of one input each: trimmed, single-line, bounded, typed. A bad value throws a
 * SettingsError naming the input, the problem and the fix.
 */
import { parseDuration } from '../duration.js'
import { isVersionText } from '../releases/versions.js'
import { type InputReader, SettingsError } from './types.js'

export function text(read: InputReader, name: string): string | undefined {
  const raw = read(name)
  if (raw.includes('\0')) throw new SettingsError(name, 'contains a NUL byte', 'Remove it')
  const value = raw.trim()
  return value === '' ? undefined : value
}

/** A single-line value: no newlines, bounded length. */
export function line(read: InputReader, name: string, max = 1024): string | undefined {
  const value = text(read, name)
  if (value === undefined) return undefined
  if (/[\r\n]/.test(value)) throw new SettingsError(name, 'contains a line break', 'Give a single line')
  if (value.length > max)
    throw new SettingsError(name, `is ${value.length} characters long (at most ${max})`, 'Shorten it')
  return value
}

/** A user name (as useradd allows) or a uid. */
export function userName(read: InputReader, name: string): string | undefined {
  const value = line(read, name, 64)
  if (value === undefined || /^(\d+|[A-Za-z_][A-Za-z0-9_.-]*\$?)$/.test(value)) return value
  throw new SettingsError(
    name,
    `'${value}' is not a user name`,
    'Give the name (or uid) of the user the master runs as'
  )
}

export function bool(read: InputReader, name: string, fallback: boolean): boolean {
  const value = line(read, name)
  if (value === undefined) return fallback
  if (/^(true|yes|on|1)$/i.test(value)) return true
  if (/^(false|no|off|0)$/i.test(value)) return false
  throw new SettingsError(name, `'${value}' is not a boolean`, 'Use true or false')
}

export function integer(read: InputReader, name: string, fallback: number, min: number, max: number): number {
  const value = line(read, name)
  if (value === undefined) return fallback
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max)
    throw new SettingsError(
      name,
      `'${value}' is not a whole number from ${min} to ${max}`,
      `Use e.g. ${fallback}`
    )
  return Number(value)
}

export function duration(
  read: InputReader,
  name: string,
  fallback: string,
  minMs = 1,
  maxMs = 24 * 3_600_000
): number {
  const value = line(read, name) ?? fallback
  const ms = parseDuration(value)
  if (ms === null)
    throw new SettingsError(
      name,
      `'${value}' is not a duration`,
      'Write e.g. 250ms, 30s, 5m, or a number of seconds'
    )
  if (ms < minMs || ms > maxMs)
    throw new SettingsError(
      name,
      `${value} is out of range`,
      `Use a duration from ${minMs}ms to ${maxMs / 3_600_000}h`
    )
  return ms
}

export function oneOf<T extends string>(
  read: InputReader,
  name: string,
  allowed: readonly T[],
  fallback: T
): T {
  const value = line(read, name) ?? fallback
  if (!(allowed as readonly string[]).includes(value))
    throw new SettingsError(
      name,
      `'${value}' is not one of ${allowed.join(', ')}`,
      `Use one of ${allowed.join(', ')}`
    )
  return value as T
}

/** An absolute POSIX path with no `..`, NUL, or line breaks. */
export function checkRemotePath(name: string, value: string): string {
  // First, so that no message echoes an escape sequence into the log. Any C0 control or DEL.
  if (/[\u0000-\u001f\u007f]/.test(value))
    throw new SettingsError(name, 'contains a control character', 'Remove it')
  if (!value.startsWith('/'))
    throw new SettingsError(name, `'${value}' is not an absolute path`, 'Start it with /')
  if (value.split('/').some(part => part === '..'))
    throw new SettingsError(name, `'${value}' contains a '..' segment`, 'Give the path without ..')
  if (value.length > 4096) throw new SettingsError(name, 'is longer than 4096 characters', 'Shorten it')
  if (value.endsWith('/') && value !== '/') return value.replace(/\/+$/, '')
  return value
}

export function remotePath(read: InputReader, name: string, fallback?: string): string | undefined {
  const value = line(read, name, 4096) ?? fallback
  return value === undefined ? undefined : checkRemotePath(name, value)
}

export function regex(read: InputReader, name: string): RegExp | undefined {
  const value = line(read, name, 2048)
  if (value === undefined) return undefined
  try {
    return new RegExp(value)
  } catch (e) {
    throw new SettingsError(
      name,
      `is not a valid regular expression (${(e as Error).message})`,
      'Fix the pattern'
    )
  }
}

/** A version as given: semver (1.27.3, 2.0.0-rc.1) or a Debian version (1.22.1-9+deb12u11, 2:1.0~rc1-1). */
export function versionInput(read: InputReader, name: string): string | undefined {
  const value = line(read, name, 256)
  if (value === undefined) return undefined
  if (!isVersionText(value))
    throw new SettingsError(
      name,
      `'${value}' is neither a semantic version nor a Debian version`,
      'Write e.g. 1.27.3, 2.0.0-rc.1 or 1.22.1-9+deb12u11'
    )
  return value
}

/** rollback-to: a version as given, or the sha256 (12 or more hex digits) of a release. */
export function rollbackToInput(read: InputReader): string | undefined {
  const value = line(read, 'rollback-to', 256)
  if (value === undefined || /^[0-9a-fA-F]{12,64}$/.test(value)) return value
  return versionInput(read, 'rollback-to')
}
