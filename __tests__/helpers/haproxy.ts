/**
 * HAProxy test builds for sandbox hosts started with `server: 'haproxy'` (test/sandbox/README.md).
 * A build differs from the machine's /usr/sbin/haproxy by its bytes alone: the master re-executes
 * itself with the arguments and environment it already has, so a wrapper that changed those would
 * leak into the rollback too. The sandbox's config reads the version string instead.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const HAPROXY = '/usr/sbin/haproxy'
export const LIVE_HAPROXY = '/srv/app/sbin/haproxy'
export const HAPROXY_PID_FILE = '/run/haproxy.pid'

/** The machine's HAProxy version string, as `haproxy -v` prints it ("2.6.12-1+deb12u4"). */
export function haproxyVersion(): string {
  const out = execFileSync(HAPROXY, ['-v'], { encoding: 'utf8' })
  const m = /version (\S+)/.exec(out)
  if (!m) throw new Error(`no version in: ${out}`)
  return m[1]!
}

/** The binary with every copy of its version string replaced by `version`, padded to the same length. */
function patched(version: string): Buffer {
  const old = haproxyVersion()
  const next = (version + '-' + 'z'.repeat(old.length)).slice(0, old.length)
  const bytes = readFileSync(HAPROXY)
  const from = Buffer.from(old)
  const to = Buffer.from(next)
  const parts: Buffer[] = []
  let at = 0
  for (let i = bytes.indexOf(from); i !== -1; i = bytes.indexOf(from, i + from.length)) {
    parts.push(bytes.subarray(at, i), to)
    at = i + from.length
  }
  if (parts.length === 0) throw new Error(`${HAPROXY} does not hold its version string ${old}`)
  parts.push(bytes.subarray(at))
  return Buffer.concat(parts)
}

function write(dir: string, name: string, bytes: Buffer): string {
  const path = join(dir, name)
  writeFileSync(path, bytes, { mode: 0o755 })
  return path
}

/** A distinct, working HAProxy: the machine's binary with bytes appended (ELF ignores them). */
export function haproxyBuild(dir: string, label: string): string {
  return write(
    dir,
    `haproxy-${label}`,
    Buffer.concat([readFileSync(HAPROXY), Buffer.from(`\nzerodown-test-build ${label}\n`)])
  )
}

/** Serves, passes `haproxy -c`, but answers /health with 500 (version 9.5.x). */
export function haproxyHealth500Build(dir: string): string {
  return write(dir, 'haproxy-health500', patched('9.5.0'))
}

/** Passes `haproxy -c`, but its reload cannot bind its ports: the master stays in wait mode (9.4.x). */
export function haproxyNoBindBuild(dir: string): string {
  return write(dir, 'haproxy-nobind', patched('9.4.0'))
}

/** Passes `haproxy -c`, but its new worker dies right after start (9.3.x: a chroot it may not do). */
export function haproxyWorkerDiesBuild(dir: string): string {
  return write(dir, 'haproxy-workerdies', patched('9.3.0'))
}

/**
 * A "binary" that passes the checks (-c, -v, by running the real HAProxy) and exits at once
 * when it is run for real: as the master's re-exec, it ends the master itself.
 */
export function haproxyExitBuild(dir: string): string {
  const path = join(dir, 'haproxy-exit')
  writeFileSync(
    path,
    `#!/bin/sh\ncase " $* " in *" -c "*|*" -v "*|*" -vv "*) exec ${HAPROXY} "$@";; esac\necho "broken build" >&2\nexit 1\n`,
    { mode: 0o755 }
  )
  return path
}

/** A working HAProxy that reports another version (same length as the machine's), e.g. 8.0.0. */
export function haproxyVersionBuild(dir: string, version: string): string {
  return write(dir, `haproxy-${version}`, patched(version))
}
