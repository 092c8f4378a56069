/**
 * ssh2 writes each SSH packet to its socket in pieces (AES-GCM: the 4-byte length, the encrypted
 * payload, the 16-byte tag; ChaCha20-Poly1305 likewise), and with Nagle off (ssh-connect.ts) each
 * piece is a write(2) and a TCP segment of its own: three system calls, three segments on the
 * wire and three wake-ups of sshd per packet. Corking the socket for the rest of the tick makes
 * every write of one tick a single writev(2): the same bytes in the same order, a few
 * microseconds later, still before any I/O is waited for (bench/runner-cost.mjs profile).
 */
import { Socket } from 'node:net'

const coalesced = new WeakSet<Socket>()

/** Makes the writes of one tick to the client's TCP socket go out together. Idempotent. */
export function coalesceWrites(sock: unknown): void {
  // Only a TCP socket: a channel through a bastion (a Duplex of ssh2's) has no writev to gain.
  if (!(sock instanceof Socket) || coalesced.has(sock)) return
  coalesced.add(sock)
  const write = sock.write
  let corked = false
  const uncork = () => {
    corked = false
    sock.uncork()
  }
  sock.write = function (this: Socket, ...args: unknown[]): boolean {
    if (!corked) {
      corked = true
      sock.cork()
      process.nextTick(uncork)
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args)
  } as Socket['write']
}

/** The TCP socket under an ssh2 Client (ssh2 keeps it as _sock; undefined before connect). */
export const clientSocket = (client: unknown): unknown => (client as { _sock?: unknown } | null)?._sock
