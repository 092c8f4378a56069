/**
 * One command on an SSH channel of its own, beside the host's shell (ssh-host.ts): the fallback of
 * the side shell, for a host that refused to open a second long-lived session. `/bin/sh` reads the line
 * from stdin, so no login shell parses it (as for the shared shell); the channel closes when the
 * command ends. Output is bounded: such a command prints a few lines.
 */
import type { Client } from 'ssh2'
import { CommandTimeoutError, ConnectionLostError, type ExecResult } from './host.js'

const LIMIT = 65536

/** The first 64 KB of a stream. */
class BoundedText {
  private chunks: Buffer[] = []
  private size = 0
  push(d: Buffer): void {
    if (this.size >= LIMIT) return
    this.chunks.push(d)
    this.size += d.length
  }
  text(): string {
    return Buffer.concat(this.chunks).subarray(0, LIMIT).toString('utf8')
  }
}

export function runAside(
  connection: Client,
  hostName: string,
  line: string,
  timeoutMs: number
): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    connection.exec('exec /bin/sh', (err, channel) => {
      if (err) {
        reject(new ConnectionLostError(hostName, `cannot open a channel: ${err.message}`))
        return
      }
      const out = new BoundedText()
      const errText = new BoundedText()
      let code: number | null = null
      const timer = setTimeout(() => {
        reject(new CommandTimeoutError(hostName, line, timeoutMs))
        channel.close()
      }, timeoutMs)
      channel.on('data', (d: Buffer) => out.push(d))
      channel.stderr.on('data', (d: Buffer) => errText.push(d))
      channel.on('exit', (c: number | null) => (code = c))
      channel.on('close', () => {
        clearTimeout(timer)
        if (code === null)
          reject(new ConnectionLostError(hostName, 'the channel closed before the command ended'))
        else resolve({ stdout: out.text(), stderr: errText.text(), code })
      })
      channel.end(`( ${line}\n) </dev/null\n`)
    })
  })
}
