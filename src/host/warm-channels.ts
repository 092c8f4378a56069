/**
 * Channels an SSH host opens ahead of their use, so that the use pays no round trip of its own:
 * the upload's (its `read` waits on the host for the path) and the next health GET's (a tunnel
 * opened about one round trip before the check). Each belongs to the connection it was opened on:
 * one left from an older connection is closed, never used.
 */
import type { NodeSSH } from 'node-ssh'
import type { ClientChannel } from 'ssh2'
import type { HttpResponse } from './host.js'
import {
  getOver,
  NoAnswerError,
  openTunnel,
  tunnelTarget,
  warmTunnel,
  type WarmTunnel
} from './http-tunnel.js'
import { openUploadChannel } from './stream-upload.js'

interface WarmUpload {
  ssh: NodeSSH
  channel: Promise<ClientChannel | Error>
  closed: boolean
}

export class WarmChannels {
  private upload: WarmUpload | null = null
  private get: WarmTunnel | null = null

  constructor(private readonly hostName: string) {}

  warmUpload(ssh: NodeSSH): void {
    if (this.upload) return
    const warm: WarmUpload = {
      ssh,
      closed: false,
      channel: openUploadChannel(ssh.connection!, this.hostName).catch((e: Error) => e)
    }
    void warm.channel.then(c => c instanceof Error || c.on('close', () => (warm.closed = true)))
    this.upload = warm
  }

  /** The warmed channel if it still waits on this connection, else a new one. */
  async uploadChannel(ssh: NodeSSH): Promise<ClientChannel> {
    const warm = this.upload
    this.upload = null
    const channel = warm && warm.ssh === ssh ? await warm.channel : null
    if (channel && !(channel instanceof Error) && !warm!.closed) return channel
    if (channel && !(channel instanceof Error)) channel.close()
    return openUploadChannel(ssh.connection!, this.hostName)
  }

  warmGet(ssh: NodeSSH, url: string): void {
    this.dropGet()
    this.get = warmTunnel(ssh, this.hostName, url)
  }

  /** The GET's warmed channel, taken before any await: a warmGet for the next check may come meanwhile. */
  takeGet(): WarmTunnel | null {
    const warm = this.get
    this.get = null
    return warm
  }

  drop(): void {
    void this.upload?.channel.then(c => c instanceof Error || c.close())
    this.upload = null
    this.dropGet()
  }

  private dropGet(): void {
    void this.get?.channel.then(c => c instanceof Error || c.destroy())
    this.get = null
  }
}

/** A GET over `warm` when it was opened on this connection for the same target, else over a new tunnel. */
export async function getWithWarm(
  ssh: NodeSSH,
  hostName: string,
  warm: WarmTunnel | null,
  url: string,
  timeoutMs: number
): Promise<HttpResponse> {
  const started = Date.now()
  if (warm && warm.ssh === ssh && warm.key === tunnelTarget(url).key) {
    const channel = await warm.channel
    if (!(channel instanceof Error) && warm.usable) {
      try {
        return await getOver(channel, url, timeoutMs)
      } catch (e) {
        // The server closed the waiting connection as the GET went: nothing was answered, so
        // the GET goes again on a new channel (what an HTTP client does with a stale keep-alive).
        if (!(e instanceof NoAnswerError)) throw e
      }
    } else if (!(channel instanceof Error)) channel.destroy()
  } else if (warm) void warm.channel.then(c => c instanceof Error || c.destroy())
  const channel = await openTunnel(ssh, hostName, url)
  return getOver(channel, url, timeoutMs - (Date.now() - started))
}
