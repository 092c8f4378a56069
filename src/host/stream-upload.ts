/**
 * An upload as one stream on an SSH channel of its own: `cat` on the host writes the file. An
 * SFTP upload pays about ten round trips before and after its data (the channel, the subsystem,
 * SFTP's hello, open, the writes' acknowledgements, close); this pays three (the channel, the
 * exec request, the exit status), which is what a slow link notices (bench/latency.mjs).
 *
 * The command line is a constant, so no login shell ever parses a path: the path travels as the
 * first line of the stream, read by sh's `read` (which takes one line and not a byte more from a
 * pipe), and the rest of the stream is the file. The channel may be opened ahead of the upload
 * (`openUploadChannel`): `read` waits on the host, and the upload then pays one round trip.
 */
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { Client, ClientChannel } from 'ssh2'
import { ConnectionLostError, type UploadProgress } from './host.js'

/**
 * Reads the path, then writes the rest of stdin to a new file there (mode 0600 while it is
 * written), makes it executable and prints its sha256: the caller's check comes back with the
 * upload's end, not a round trip later. Whatever had the name is removed first and the file is
 * created exclusively (set -C: O_EXCL), so the upload never writes through a symlink or into an
 * inode another name shares. A file that could not be written whole is removed at once. No
 * sha256sum on the host: nothing is printed (the caller reads it).
 */
export const UPLOAD_COMMAND = `exec /bin/sh -c 'umask 077; IFS= read -r p || exit 90; rm -f -- "$p" || exit 91; set -C; cat > "$p" || { rm -f -- "$p"; exit 92; }; chmod 0755 -- "$p" || { rm -f -- "$p"; exit 93; }; sha256sum -- "$p" 2>/dev/null; exit 0'`

/** What the host said when the file could not be written (the first 4 KB of stderr). */
export class UploadError extends Error {
  constructor(hostName: string, remotePath: string, detail: string) {
    super(`${hostName}: cannot write ${remotePath}: ${detail}`)
    this.name = 'UploadError'
  }
}

/** The upload's channel, `read` waiting on the host for the path. */
export function openUploadChannel(connection: Client, hostName: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) =>
    connection.exec(UPLOAD_COMMAND, (err, channel) => {
      if (err)
        reject(new ConnectionLostError(hostName, `cannot open a channel for the upload: ${err.message}`))
      else resolve(channel)
    })
  )
}

export async function streamUpload(
  open: () => Promise<ClientChannel>,
  hostName: string,
  localPath: string,
  remotePath: string,
  onProgress?: (p: UploadProgress) => void
): Promise<string | null> {
  if (/[\n\0]/.test(remotePath))
    throw new Error(`refusing to upload to a path with a line break: ${remotePath}`)
  const total = (await stat(localPath)).size
  const channel = await open()
  return new Promise<string | null>((resolve, reject) => {
    let code: number | null = null
    let stderr = ''
    let stdout = ''
    let transferred = 0
    const file = createReadStream(localPath)
    // The channel closes only once its output is read to the end: the sha256 line.
    channel.on('data', (d: Buffer) => {
      if (stdout.length < 4096) stdout += d.toString('utf8')
    })
    channel.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString('utf8')
    })
    channel.on('exit', (c: number | null) => (code = c))
    // A host that stops reading (cat failed) ends the channel; 'close' reports it.
    channel.on('error', () => undefined)
    channel.on('close', () => {
      file.destroy()
      if (code === 0) resolve(/^([0-9a-f]{64})\s/.exec(stdout)?.[1] ?? null)
      else if (code === null)
        reject(new ConnectionLostError(hostName, `the connection closed while uploading to ${remotePath}`))
      else reject(new UploadError(hostName, remotePath, stderr.trim().slice(0, 4096) || `status ${code}`))
    })
    file.on('data', (d: Buffer | string) => {
      transferred += d.length
      onProgress?.({ transferred, total })
    })
    file.on('error', e => {
      channel.close()
      reject(new Error(`cannot read ${localPath}: ${e.message}`))
    })
    channel.write(`${remotePath}\n`)
    file.pipe(channel)
  })
}
