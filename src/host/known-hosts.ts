/**
 * Host key checks: OpenSSH known_hosts lines (plain, `[host]:port`, hashed `|1|`, wildcards,
 * `@revoked`) and SHA256 fingerprints as `ssh-keygen -lf` prints them, each bound to the host it
 * belongs to (`host=SHA256:...`; a bare one only when the run has a single host). Fails closed;
 * revocation always wins.
 * `@cert-authority` lines are refused with a clear message: ssh2 cannot check host certificates.
 * Like OpenSSH, a host is offered the host key algorithms of the keys trusted for it, so a host
 * with several keys presents the one that is known (see hostKeyAlgorithms).
 */
import { createHash, createHmac } from 'node:crypto'

export function fingerprintOf(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')
}

/** The key type written inside a key blob (first length-prefixed string). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown'
  const len = keyBlob.readUInt32BE(0)
  return keyBlob.subarray(4, 4 + len).toString('latin1')
}

interface Entry {
  marker?: 'revoked' | 'cert-authority'
  patterns: string
  type: string
  blob: Buffer
}

function parse(text: string): Entry[] {
  const entries: Entry[] = []
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const fields = line.split(/\s+/)
    let marker: Entry['marker']
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') {
      marker = fields.shift() === '@revoked' ? 'revoked' : 'cert-authority'
    }
    const [patterns, type, b64] = fields
    if (patterns === undefined || type === undefined || b64 === undefined) continue
    if (!/^[A-Za-z0-9+/]+=*$/.test(b64)) continue
    entries.push({ marker, patterns, type, blob: Buffer.from(b64, 'base64') })
  }
  return entries
}

/**
 * How many lines of a known_hosts text are host keys (`[marker] patterns key-type base64`); the
 * rest are comments, blanks, or something else pasted by mistake.
 */
export function hostKeyLineCount(text: string): number {
  return parse(text).filter(e => /^(ssh-|ecdsa-|sk-)/.test(e.type) && e.blob.length > 0).length
}

/** The names a host is looked up under: `host` for port 22, `[host]:port` otherwise. */
function lookupName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .split('')
        .map(c => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('') +
      '$',
    'i'
  )
  return re.test(name)
}

function hashedMatch(pattern: string, name: string): boolean {
  const parts = pattern.split('|') // ['', '1', salt, hash]
  if (parts.length !== 4 || parts[1] !== '1') return false
  // OpenSSH hashes the lower-cased name (ssh-keygen -H, HashKnownHosts), so it matches case-insensitively.
  const mac = createHmac('sha1', Buffer.from(parts[2]!, 'base64')).update(name.toLowerCase()).digest('base64')
  return mac === parts[3]
}

function matches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) return hashedMatch(patterns, name)
  let matched = false
  for (const p of patterns.split(',')) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false
    } else if (globMatch(p, name)) {
      matched = true
    }
  }
  return matched
}

/** A fingerprint without the base64 padding some tools print (`SHA256:...=`). */
export function normalizeFingerprint(fp: string): string {
  return fp.replace(/=+$/, '')
}

/** A pinned fingerprint: `host=SHA256:...` or `[host]:port=SHA256:...` binds it; a bare one binds none. */
export function parsePin(item: string): { host?: string; fingerprint: string } {
  const at = item.lastIndexOf('=SHA256:')
  if (at <= 0) return { fingerprint: normalizeFingerprint(item) }
  return { host: item.slice(0, at), fingerprint: normalizeFingerprint(item.slice(at + 1)) }
}

/** Whether a pin's host names host:port (case-insensitive, `host` for any port or `[host]:port`). */
export function pinNames(pinHost: string, host: string, port: number): boolean {
  const p = pinHost.toLowerCase()
  return p === host.toLowerCase() || p === `[${host.toLowerCase()}]:${port}`
}

export type HostKeyVerdict =
  { ok: true; fingerprint: string } | { ok: false; reason: string; fingerprint: string }

/** What a host key is checked against. */
export interface HostKeyPolicy {
  knownHosts?: string
  /** `host=SHA256:...` pins, or bare ones (settings allow those for a single host only). */
  fingerprints: string[]
  insecureSkip: boolean
}

/**
 * Decides whether `keyBlob`, presented by host:port, is trusted. The reason of a refusal names
 * the expected and the received fingerprint.
 */
export function verifyHostKey(
  policy: HostKeyPolicy,
  host: string,
  port: number,
  keyBlob: Buffer
): HostKeyVerdict {
  const fingerprint = fingerprintOf(keyBlob)
  const type = keyTypeOf(keyBlob)
  const name = lookupName(host, port)
  const entries = policy.knownHosts ? parse(policy.knownHosts).filter(e => matches(e.patterns, name)) : []
  // Revocation first: a pinned fingerprint never overrides it.
  if (entries.some(e => e.marker === 'revoked' && e.blob.equals(keyBlob)))
    return {
      ok: false,
      fingerprint,
      reason: `host key ${fingerprint} of ${name} is marked @revoked in known-hosts`
    }
  const pins = policy.fingerprints
    .map(parsePin)
    .filter(p => p.host === undefined || pinNames(p.host, host, port))
    .map(p => p.fingerprint)
  if (pins.includes(fingerprint)) return { ok: true, fingerprint }
  const plain = entries.filter(e => e.marker === undefined)
  if (plain.some(e => e.blob.equals(keyBlob))) return { ok: true, fingerprint }
  if (policy.insecureSkip) return { ok: true, fingerprint }
  const expected = [...plain.map(e => `${e.type} ${fingerprintOf(e.blob)}`), ...pins]
  if (expected.length === 0 && entries.some(e => e.marker === 'cert-authority'))
    return {
      ok: false,
      fingerprint,
      reason: `known-hosts trusts ${name} only through a @cert-authority line, and host certificates cannot be checked here (the SSH library, ssh2, has no certificate support). Add the host's own key line (ssh-keyscan -p ${port} ${host}, checked out of band) to known-hosts, or its fingerprint to host-fingerprints`
    }
  if (expected.length === 0)
    return {
      ok: false,
      fingerprint,
      reason: `no trusted host key is known for ${name} (received ${type} ${fingerprint}); add its known_hosts line (ssh-keyscan -p ${port} ${host}) to known-hosts or its fingerprint to host-fingerprints`
    }
  return {
    ok: false,
    fingerprint,
    reason: `HOST KEY MISMATCH for ${name}: expected ${expected.join(' or ')}, received ${type} ${fingerprint}. Someone may be intercepting the connection, or the host was reinstalled; verify the new key out of band before updating known-hosts`
  }
}

/** Signature algorithms that prove a key of each type, in OpenSSH's order (RSA: SHA-2 only, as OpenSSH ≥ 8.8). */
const ALGORITHMS_OF: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256']
}

/** Key families as a server may hold one key of each; a host known only by fingerprint is asked for each in turn. */
export const KEY_FAMILIES: readonly string[][] = [
  ['ssh-ed25519'],
  ['ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521'],
  ['ssh-rsa']
]

/** The family (KEY_FAMILIES index) of a key type, -1 for others. */
export function keyFamily(type: string): number {
  return KEY_FAMILIES.findIndex(f => f.includes(type))
}

/**
 * The host key algorithms to offer host:port, as OpenSSH does from known_hosts: those of the keys
 * trusted for it (an RSA line: rsa-sha2-512, rsa-sha2-256). Without a known_hosts line, only
 * fingerprints: every family not yet `tried` (a server presents one key per connection; a
 * fingerprint does not say its type). undefined: no preference (the library's list); [] when
 * every family was tried.
 */
export function hostKeyAlgorithms(
  policy: HostKeyPolicy,
  host: string,
  port: number,
  tried: readonly number[] = []
): string[] | undefined {
  const name = lookupName(host, port)
  const known = policy.knownHosts
    ? parse(policy.knownHosts).filter(e => e.marker === undefined && matches(e.patterns, name))
    : []
  const types = [...new Set(known.map(e => e.type))].filter(t => ALGORITHMS_OF[t] !== undefined)
  if (types.length > 0) {
    // Order as the library prefers them (ed25519, ECDSA, RSA), like OpenSSH's default list.
    types.sort((a, b) => keyFamily(a) - keyFamily(b) || a.localeCompare(b))
    return types.flatMap(t => ALGORITHMS_OF[t]!)
  }
  // Only the pins of this host (or bare ones) say that it is known by fingerprints.
  const pinned = policy.fingerprints.some(f => {
    const p = parsePin(f)
    return p.host === undefined || pinNames(p.host, host, port)
  })
  if (known.length > 0 || !pinned || policy.insecureSkip) return undefined
  return KEY_FAMILIES.flatMap((types, i) => (tried.includes(i) ? [] : types.flatMap(t => ALGORITHMS_OF[t]!)))
}
