/** Where the hosts are and how to prove who they are: hosts, jump host, keys and pinned fingerprints. */
import { hostKeyLineCount, parsePin, pinNames } from '../host/known-hosts.js'
import { text } from './read.js'
import { type HostTarget, type InputReader, type Settings, SettingsError } from './types.js'

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/
export const USERNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/

/** Parses one `[user@]host[:port]` item; IPv6 addresses go in brackets: `[::1]:22`. */
export function parseHostTarget(
  input: string,
  item: string,
  defaultUser: string,
  defaultPort: number
): HostTarget {
  let rest = item
  let user = defaultUser
  const at = rest.lastIndexOf('@')
  if (at >= 0) {
    user = rest.slice(0, at)
    rest = rest.slice(at + 1)
  }
  if (!USERNAME.test(user))
    throw new SettingsError(
      input,
      `'${item}': user '${user}' is not a valid user name`,
      'Use letters, digits, _ . -'
    )
  let host: string
  let port = defaultPort
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest)
  if (bracket) {
    host = bracket[1]!
    if (bracket[2] !== undefined) port = Number(bracket[2])
    if (!IPV6.test(host))
      throw new SettingsError(input, `'${item}': '${host}' is not an IPv6 address`, 'Check it')
  } else {
    const colon = rest.lastIndexOf(':')
    if (colon >= 0 && rest.indexOf(':') === colon) {
      const portText = rest.slice(colon + 1)
      if (!/^\d+$/.test(portText))
        throw new SettingsError(
          input,
          `'${item}': port '${portText}' is not a number`,
          'Write host:port, e.g. web1:22'
        )
      port = Number(portText)
      rest = rest.slice(0, colon)
    } else if (colon >= 0) {
      throw new SettingsError(
        input,
        `'${item}': an IPv6 address must be in brackets`,
        'Write [2001:db8::1]:22'
      )
    }
    host = rest
    if (!HOSTNAME.test(host))
      throw new SettingsError(
        input,
        `'${item}': '${host}' is not a host name or address`,
        'Use letters, digits, . - only'
      )
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new SettingsError(input, `'${item}': port ${port} is out of range`, 'Use a port from 1 to 65535')
  const shown = host.includes(':') ? `[${host}]` : host
  return { host, port, user, label: port === 22 ? `${user}@${shown}` : `${user}@${shown}:${port}` }
}

export function hostList(read: InputReader, user: string, port: number): HostTarget[] {
  const raw = text(read, 'hosts')
  if (raw === undefined)
    throw new SettingsError(
      'hosts',
      'is required',
      'List the hosts as [user@]host[:port], one per line or comma-separated'
    )
  const items = raw
    .split(/[\n,]/)
    .map(s => s.trim())
    .filter(s => s !== '' && !s.startsWith('#'))
  if (items.length === 0)
    throw new SettingsError('hosts', 'lists no host', 'Give at least one [user@]host[:port]')
  if (items.length > 1000)
    throw new SettingsError('hosts', `lists ${items.length} hosts (at most 1000)`, 'Split the rollout')
  const targets = items.map(item => parseHostTarget('hosts', item, user, port))
  const seen = new Set<string>()
  for (const t of targets) {
    const key = `${t.host}:${t.port}`
    if (seen.has(key)) throw new SettingsError('hosts', `lists ${key} twice`, 'List each host once')
    seen.add(key)
  }
  return targets
}

export function fingerprints(read: InputReader): string[] {
  const raw = text(read, 'host-fingerprints')
  if (raw === undefined) return []
  const items = raw
    .split(/[\n,\s]+/)
    .map(s => s.trim())
    .filter(s => s !== '')
  for (const fp of items) {
    if (!/^(?:[^\s=]+=)?SHA256:[A-Za-z0-9+/]{43}=?$/.test(fp))
      throw new SettingsError(
        'host-fingerprints',
        `'${fp.slice(0, 80)}' is not a SHA256 fingerprint`,
        'Use host=SHA256:..., with the SHA256:... form that `ssh-keygen -lf <key file>` prints'
      )
  }
  // Padding (SHA256:...=) is dropped here: fingerprints compare as OpenSSH prints them.
  return items.map(fp => fp.replace(/=+$/, ''))
}

/** Each fingerprint names a host of the run; a bare one is allowed when there is one host to connect to. */
export function checkPins(s: Settings): void {
  const targets = [...s.hosts, ...(s.jumpHost ? [s.jumpHost] : [])]
  for (const item of s.hostFingerprints) {
    const pin = parsePin(item)
    if (pin.host === undefined && targets.length > 1)
      throw new SettingsError(
        'host-fingerprints',
        `'${item.slice(0, 60)}' names no host, and this run connects to ${targets.length} hosts${s.jumpHost ? ' (with the jump host)' : ''}: one host's key would be accepted for every other`,
        'Bind each fingerprint to its host: host=SHA256:... (the host as written in hosts or jump-host)'
      )
    if (pin.host !== undefined && !targets.some(t => pinNames(pin.host!, t.host, t.port)))
      throw new SettingsError(
        'host-fingerprints',
        `'${item.slice(0, 60)}' names ${pin.host}, which is neither in hosts nor the jump-host`,
        'Write the host as in hosts (or [host]:port)'
      )
  }
}

export function privateKey(read: InputReader, name: string): string | undefined {
  const raw = read(name)
  if (raw.trim() === '') return undefined
  if (raw.includes('\0')) throw new SettingsError(name, 'contains a NUL byte', 'Paste the key file as it is')
  const key = raw.replace(/\r\n/g, '\n').trim() + '\n'
  if (!/^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\n[\s\S]+\n-----END [A-Z0-9 ]*PRIVATE KEY-----\n$/.test(key))
    throw new SettingsError(
      name,
      'is not a private key in OpenSSH or PEM format (no -----BEGIN ... PRIVATE KEY----- block)',
      'Store the whole key file (ssh-keygen -t ed25519 writes one) in a secret and pass it as is; a .pub file is the public half'
    )
  return key
}

export function checkJumpCredentials(s: Settings): void {
  const own = (
    [
      ['jump-private-key', s.jumpPrivateKey],
      ['jump-passphrase', s.jumpPassphrase],
      ['jump-password', s.jumpPassword]
    ] as const
  ).filter(([, v]) => v !== undefined)
  if (own.length > 0 && s.jumpHost === undefined)
    throw new SettingsError(
      own[0]![0],
      'is set but jump-host is empty',
      'Name the bastion in jump-host, or remove it'
    )
  if (s.jumpPassphrase !== undefined && s.jumpPrivateKey === undefined)
    throw new SettingsError(
      'jump-passphrase',
      'is set but jump-private-key is empty',
      'Pass the key it unlocks in jump-private-key'
    )
}

/** known-hosts: bounded, and holding at least one host key line (not fingerprints, not a .pub file). */
export function checkKnownHosts(knownHosts: string | undefined): void {
  if (knownHosts !== undefined && knownHosts.length > 1_000_000)
    throw new SettingsError(
      'known-hosts',
      'is larger than 1 MB',
      'Give only the lines of the hosts of this rollout'
    )
  if (knownHosts !== undefined && hostKeyLineCount(knownHosts) === 0)
    throw new SettingsError(
      'known-hosts',
      'has no host key line (a line is `host key-type base64-key`, as ssh-keyscan prints it)',
      /SHA256:/.test(knownHosts)
        ? 'SHA256:... fingerprints go in host-fingerprints; known-hosts takes known_hosts lines'
        : 'Paste the output of ssh-keyscan -p PORT HOST, checked out of band (ssh-keygen -lf compares fingerprints)'
    )
}
