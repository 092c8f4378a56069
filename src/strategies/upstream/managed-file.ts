/**
 * The managed file: the one `upstream NAME { ... }` block the action shifts traffic in. Reading it
 * checks every server line the way nginx would (and refuses, with the line and the fix, what
 * `nginx -t` would refuse); writing changes exactly one server's `down` and `weight` and leaves
 * every other byte of the file as it was, so that a run that restores each server's original
 * state gives back the original file.
 */
import {
  applySplices,
  ConfSyntaxError,
  parseDirectives,
  type Directive,
  type Splice,
  type Token
} from './conf-syntax.js'

/** A server's state as far as traffic shifting goes. weight null: no weight parameter (nginx's default, 1). */
export interface ServerState {
  down: boolean
  weight: number | null
}

export interface UpstreamServer {
  /** The address as written (host:port, unix:/path, a name). */
  address: string
  line: number
  down: boolean
  backup: boolean
  /** The weight parameter, null when absent (1). */
  weight: number | null
  /** Every parameter as written, in order (weight=5, max_fails=3, backup, ...). */
  params: string[]
  directive: Directive
}

export interface UpstreamBlock {
  name: string
  line: number
  servers: UpstreamServer[]
  /** Block-level directives other than server, by name (ip_hash, least_conn, keepalive, hash, zone...). */
  settings: Map<string, string[]>
  /** The balancing method: round-robin unless ip_hash, least_conn, hash or random is set. */
  method: 'round-robin' | 'ip_hash' | 'least_conn' | 'hash' | 'random'
}

export interface ManagedFile {
  text: string
  block: UpstreamBlock
  /** Names of all upstream blocks in the file (for messages). */
  upstreams: string[]
}

/** The managed file cannot be used: `problem` says why, `fix` what to do. */
export class ManagedFileError extends Error {
  constructor(
    readonly problem: string,
    readonly fix: string
  ) {
    super(`${problem}. ${fix}`)
    this.name = 'ManagedFileError'
  }
}

const INTEGER = /^\d+$/
const TIME = /^\d+(ms|s|m|h|d|w|M|y)?$/
/** Parameters of `server` inside an http upstream, and what their value must look like. */
const VALUED: Record<string, RegExp> = {
  weight: INTEGER,
  max_fails: INTEGER,
  fail_timeout: TIME,
  max_conns: INTEGER,
  slow_start: TIME,
  route: /^.+$/,
  service: /^.+$/
}
const FLAGS = new Set(['backup', 'down', 'resolve', 'drain'])
const METHODS = ['ip_hash', 'least_conn', 'hash', 'random'] as const

function where(line: number): string {
  return `line ${line}`
}

function parseServer(d: Directive, method: UpstreamBlock['method']): UpstreamServer {
  const [addressToken, ...paramTokens] = d.args
  if (addressToken === undefined)
    throw new ManagedFileError(`${where(d.line)}: a server line has no address`, 'Write server host:port;')
  const server: UpstreamServer = {
    address: addressToken.value,
    line: d.line,
    down: false,
    backup: false,
    weight: null,
    params: paramTokens.map(t => t.value),
    directive: d
  }
  const seen = new Set<string>()
  const at = `${where(d.line)}, server ${server.address}`
  for (const [k, t] of paramTokens.entries()) {
    const p = t.value
    if (p.startsWith('='))
      throw new ManagedFileError(
        `${at}: '${paramTokens[k - 1]?.value ?? ''} ${p}' has a space before '=', which nginx -t refuses ("invalid parameter")`,
        `Write ${paramTokens[k - 1]?.value ?? 'name'}${p} without the space`
      )
    const eq = p.indexOf('=')
    const name = eq < 0 ? p : p.slice(0, eq)
    if (seen.has(name)) throw new ManagedFileError(`${at}: the parameter ${name} is given twice`, 'Keep one')
    seen.add(name)
    if (eq < 0) {
      if (VALUED[name] !== undefined)
        throw new ManagedFileError(
          `${at}: '${p}' needs a value (${name}=...)${paramTokens[k + 1]?.value.startsWith('=') ? '; a space before = is not allowed' : ''}`,
          `Write ${name}=<value> without spaces`
        )
      if (!FLAGS.has(name))
        throw new ManagedFileError(
          `${at}: unknown parameter '${p}'`,
          'Use weight, max_fails, fail_timeout, max_conns, backup or down'
        )
      if (name === 'down') server.down = true
      if (name === 'backup') server.backup = true
      continue
    }
    const value = p.slice(eq + 1)
    const shape = VALUED[name]
    if (shape === undefined)
      throw new ManagedFileError(
        `${at}: unknown parameter '${p}'`,
        'Use weight, max_fails, fail_timeout, max_conns, backup or down'
      )
    if (!shape.test(value))
      throw new ManagedFileError(
        `${at}: '${p}' has an invalid value`,
        `Give ${name} ${shape === TIME ? 'a time such as 10s' : 'a whole number'}`
      )
    if (name === 'weight') {
      if (Number(value) < 1)
        throw new ManagedFileError(
          `${at}: weight=${value} is invalid (nginx -t wants a weight of at least 1)`,
          'Take a server out with down, not with weight=0'
        )
      server.weight = Number(value)
    }
  }
  if (server.backup && method !== 'round-robin' && method !== 'least_conn')
    throw new ManagedFileError(
      `${at}: backup cannot be combined with ${method} (nginx -t refuses it)`,
      `Remove backup or ${method}`
    )
  return server
}

function parseBlock(d: Directive): UpstreamBlock {
  const settings = new Map<string, string[]>()
  const children = d.children ?? []
  for (const c of children) {
    if (c.name === 'server') continue
    if (c.children !== undefined)
      throw new ManagedFileError(
        `${where(c.line)}: a ${c.name} { } block inside upstream ${d.args[0]!.value}`,
        'Remove it'
      )
    if (settings.has(c.name))
      throw new ManagedFileError(
        `${where(c.line)}: ${c.name} is set twice in upstream ${d.args[0]!.value}`,
        'Keep one'
      )
    settings.set(
      c.name,
      c.args.map(a => a.value)
    )
  }
  const methods = METHODS.filter(m => settings.has(m))
  if (methods.length > 1)
    throw new ManagedFileError(
      `upstream ${d.args[0]!.value} sets ${methods.join(' and ')}: nginx keeps only one balancing method`,
      'Keep one'
    )
  const method = methods[0] ?? 'round-robin'
  const servers = children.filter(c => c.name === 'server').map(c => parseServer(c, method))
  if (servers.length === 0)
    throw new ManagedFileError(
      `upstream ${d.args[0]!.value} has no server line`,
      'List the servers in the block'
    )
  const addresses = new Set<string>()
  for (const s of servers) {
    if (addresses.has(s.address))
      throw new ManagedFileError(
        `${where(s.line)}: server ${s.address} is listed twice in upstream ${d.args[0]!.value}`,
        'The action changes one line per server: keep one line per address'
      )
    addresses.add(s.address)
  }
  return { name: d.args[0]!.value, line: d.line, servers, settings, method }
}

/**
 * Reads the managed file and its block `name`. The file is included inside `http { }`, so the
 * block must be at its top level; other top-level content is kept as it is and never changed.
 */
export function parseManagedFile(text: string, name: string): ManagedFile {
  let top: Directive[]
  try {
    top = parseDirectives(text)
  } catch (e) {
    if (e instanceof ConfSyntaxError)
      throw new ManagedFileError(
        `it is not valid nginx syntax (${e.message})`,
        'Fix the file; nginx -t shows the same'
      )
    throw e
  }
  const upstreams = top.filter(d => d.name === 'upstream')
  for (const u of upstreams)
    if (u.args.length !== 1 || u.children === undefined)
      throw new ManagedFileError(
        `${where(u.line)}: an upstream directive needs one name and a { } block`,
        'Write upstream NAME { ... }'
      )
  const names = upstreams.map(u => u.args[0]!.value)
  const matches = upstreams.filter(u => u.args[0]!.value === name)
  if (matches.length === 0)
    throw new ManagedFileError(
      `it holds no upstream block named ${name}` +
        (names.length > 0 ? ` (it holds: ${names.join(', ')})` : ' (it holds no upstream block at all)'),
      'Fix upstream-name, or upstream-file'
    )
  if (matches.length > 1)
    throw new ManagedFileError(
      `it holds ${matches.length} upstream blocks named ${name}`,
      'Keep one (nginx -t refuses duplicates)'
    )
  return { text, block: parseBlock(matches[0]!), upstreams: names }
}

export function findServer(file: ManagedFile, address: string): UpstreamServer | undefined {
  return file.block.servers.find(s => s.address === address)
}

export function stateOf(s: UpstreamServer): ServerState {
  return { down: s.down, weight: s.weight }
}

function param(d: Directive, name: string): Token | undefined {
  return d.args.slice(1).find(t => t.value === name || t.value.startsWith(`${name}=`))
}

/**
 * The file with server `address` in state `to`: `down` added or removed, the weight parameter set,
 * replaced or removed (null). Every other byte stays. Returns the new text.
 */
export function withServerState(file: ManagedFile, address: string, to: ServerState): string {
  const server = findServer(file, address)
  if (!server) throw new Error(`upstream ${file.block.name} lists no server ${address}`)
  if (to.weight !== null && (!Number.isInteger(to.weight) || to.weight < 1))
    throw new Error(`weight ${to.weight} is not a whole number of at least 1`)
  const d = server.directive
  const last = d.args[d.args.length - 1]!
  const splices: Splice[] = []
  const remove = (t: Token) => {
    // The token and the blanks before it, so that adding it back gives the original line.
    let start = t.start
    while (start > 0 && /[ \t]/.test(file.text[start - 1]!)) start--
    splices.push({ start, end: t.end, text: '' })
  }
  const append: string[] = []
  const weight = param(d, 'weight')
  if (to.weight === null && weight) remove(weight)
  else if (to.weight !== null && weight) {
    if (weight.value !== `weight=${to.weight}`)
      splices.push({ start: weight.start, end: weight.end, text: `weight=${to.weight}` })
  } else if (to.weight !== null) append.push(`weight=${to.weight}`)
  const down = param(d, 'down')
  if (!to.down && down) remove(down)
  else if (to.down && !down) append.push('down')
  if (append.length > 0) splices.push({ start: last.end, end: last.end, text: ' ' + append.join(' ') })
  return applySplices(file.text, splices)
}
