/**
 * The long-lived `sh` on a host that commands are fed to, framed by random markers and pipelined:
 * commands issued together cost one round trip in all.
 */
import { randomBytes } from 'node:crypto'
import type { ClientChannel } from 'ssh2'
import { CommandTimeoutError, ConnectionLostError, type ExecResult } from './host.js'
import { OutputReader } from './output-reader.js'

/**
 * A decision the host takes itself, between two commands sent together: `set` names a gate that
 * this command's exit status opens (0) or closes (anything else); `need` runs the command only when
 * that gate is open in this shell, else answers GATE_CLOSED at once without running it. A new
 * shell (after a lost connection) has no gate open: what needs one is never run by mistake.
 */
export interface Gate {
  set?: string
  need?: string
}

/** The exit status of a command that did not run because the gate it needed was closed. */
export const GATE_CLOSED = 97

const gateVar = (name: string) => {
  if (!/^[a-z][a-z0-9_]{0,30}$/.test(name))
    throw new Error(`a gate's name is a short lowercase word: ${name}`)
  return `zd_gate_${name}`
}

/** The command line as the shell runs it: in a subshell (it cannot change our shell), stdin never the channel's. */
function gated(line: string, gate: Gate): string {
  let text = `( ${line}\n) </dev/null`
  if (gate.need)
    text = `if [ "\${${gateVar(gate.need)}:-}" = 0 ]; then ${text}; else (exit ${GATE_CLOSED}); fi`
  // The status is kept in the gate and given back as the command's ($? after an assignment is 0).
  if (gate.set) text = `${text}; ${gateVar(gate.set)}=$?; (exit "$${gateVar(gate.set)}")`
  return text
}

interface Pending {
  mark: string
  line: string
  timeoutMs: number
  timer?: NodeJS.Timeout
  resolve: (r: ExecResult) => void
  reject: (e: Error) => void
}

/**
 * One `sh` on the host that reads commands from stdin; replies are framed by random markers.
 * Commands are PIPELINED: each is written as soon as it is asked for, and the shell runs them in
 * order, so commands issued together (Promise.all, no decision between them) cost one round trip
 * in all instead of one each. A command's timeout counts from the moment the one before it ended.
 */
export class RemoteShell {
  private readonly pending: Pending[] = []
  // Linear reads, bounded: a host that prints megabytes costs one pass and a note of what was cut.
  private readonly out = new OutputReader()
  private readonly err = new OutputReader()
  dead = false

  constructor(
    private readonly channel: ClientChannel,
    private readonly hostName: string
  ) {
    channel.on('data', (d: Buffer) => {
      this.out.push(d)
      this.settle()
    })
    channel.stderr.on('data', (d: Buffer) => {
      this.err.push(d)
      this.settle()
    })
    channel.on('close', () => this.fail(new ConnectionLostError(hostName, 'the remote shell closed')))
  }

  /** Fails the command that runs with `error`, and every one written after it as lost. */
  fail(error: Error): void {
    this.dead = true
    const [head, ...rest] = this.pending.splice(0)
    if (head) {
      clearTimeout(head.timer)
      head.reject(error)
    }
    for (const p of rest) p.reject(new ConnectionLostError(this.hostName, 'the remote shell is closed'))
  }

  close(): void {
    this.dead = true
    this.channel.close()
  }

  /** Runs one command line; commands run in the order asked, on this channel. */
  run(line: string, timeoutMs: number, gate: Gate = {}): Promise<ExecResult> {
    if (this.dead) return Promise.reject(new ConnectionLostError(this.hostName, 'the remote shell is closed'))
    const mark = 'ZD' + randomBytes(12).toString('hex')
    const text = `${gated(line, gate)}; printf '\\n%s %d\\n' ${mark} "$?"; printf '\\n%s\\n' ${mark} >&2\n`
    return new Promise<ExecResult>((resolve, reject) => {
      this.pending.push({ mark, line, timeoutMs, resolve, reject })
      if (this.pending.length === 1) this.begin()
      this.channel.write(text)
    })
  }

  /** The command at the head of the line runs now: the readers look for its markers, its timeout starts. */
  private begin(): void {
    const head = this.pending[0]
    if (!head) return
    this.out.expect(`\n${head.mark} `)
    this.err.expect(`\n${head.mark}`)
    head.timer = setTimeout(() => {
      this.fail(new CommandTimeoutError(this.hostName, head.line, head.timeoutMs))
      this.channel.close()
    }, head.timeoutMs)
  }

  private settle(): void {
    for (;;) {
      const p = this.pending[0]
      if (!p) return
      const out = this.out.result()
      const err = this.err.result()
      if (!out || !err) return
      this.pending.shift()
      clearTimeout(p.timer)
      // The next command's output may already be here: expect() reads what came after the marker.
      this.begin()
      p.resolve({ stdout: out.text, stderr: err.text, code: Number(out.rest) })
    }
  }
}
