/**
 * One output stream of the remote shell, read in linear time: each chunk is searched for the
 * running command's end marker once (with the few bytes before it, for a marker split across
 * chunks), and at most `limit` bytes are kept (the first and the last halves), with a note of
 * how much was cut in between. A host that prints 16 MB costs one pass over 16 MB, not one per chunk.
 */

export class OutputReader {
  private head: Buffer[] = []
  private headBytes = 0
  private tail: Buffer[] = []
  private tailBytes = 0
  private cut = 0
  /** The last bytes seen, to find a marker that began in an earlier chunk. */
  private window: Buffer = Buffer.alloc(0)
  private marker: Buffer | null = null
  /** Bytes that came with no command waiting (after a marker), bounded like the rest. */
  private after: Buffer[] = []
  private afterBytes = 0
  private found: { text: string; rest: string } | null = null
  /** Bytes searched for markers so far (what the reading costs; a test holds it linear). */
  scanned = 0

  constructor(private readonly limit = 8 * 1024 * 1024) {}

  /** Starts a command: its output ends at `marker`, then what follows up to a line feed (its status). */
  expect(marker: string): void {
    this.marker = Buffer.from(marker, 'latin1')
    this.found = null
    const early = Buffer.concat(this.after)
    this.after = []
    this.afterBytes = 0
    if (early.length > 0) this.push(early)
  }

  /** The command's output and what followed the marker on its line, once the marker has arrived. */
  result(): { text: string; rest: string } | null {
    return this.found
  }

  push(chunk: Buffer): void {
    if (this.marker === null || this.found !== null) {
      this.waitWith(chunk)
      return
    }
    const search = this.window.length > 0 ? Buffer.concat([this.window, chunk]) : chunk
    this.scanned += search.length
    const at = search.indexOf(this.marker)
    const end = at < 0 ? -1 : search.indexOf(0x0a, at + this.marker.length)
    if (end < 0) {
      this.keep(chunk)
      // A marker, its status and the line feed fit in marker + 16 bytes.
      const k = this.marker.length + 16
      this.window = search.length > k ? search.subarray(search.length - k) : search
      return
    }
    const before = at - this.window.length
    if (before >= 0) this.keep(chunk.subarray(0, before))
    else this.drop(-before) // the marker began in bytes already kept
    const rest = search.subarray(at + this.marker.length, end).toString('latin1')
    this.found = { text: this.text(), rest }
    this.reset()
    if (end + 1 < search.length) this.waitWith(search.subarray(end + 1))
  }

  /** Output of no command (a process the last one left behind): kept until the next, bounded. */
  private waitWith(chunk: Buffer): void {
    this.after.push(chunk)
    this.afterBytes += chunk.length
    while (this.afterBytes > this.limit && this.after.length > 1)
      this.afterBytes -= this.after.shift()!.length
  }

  private keep(b: Buffer): void {
    const half = Math.floor(this.limit / 2)
    if (this.headBytes < half) {
      const n = Math.min(half - this.headBytes, b.length)
      this.head.push(b.subarray(0, n))
      this.headBytes += n
      b = b.subarray(n)
    }
    if (b.length === 0) return
    this.tail.push(b)
    this.tailBytes += b.length
    while (this.tailBytes > half) {
      const first = this.tail[0]!
      const over = this.tailBytes - half
      if (first.length <= over) {
        this.tail.shift()
        this.tailBytes -= first.length
        this.cut += first.length
      } else {
        this.tail[0] = first.subarray(over)
        this.tailBytes -= over
        this.cut += over
      }
    }
  }

  /** Removes n bytes from the end of what was kept. */
  private drop(n: number): void {
    for (const list of [this.tail, this.head]) {
      while (n > 0 && list.length > 0) {
        const last = list[list.length - 1]!
        const take = Math.min(n, last.length)
        list[list.length - 1] = last.subarray(0, last.length - take)
        if (list[list.length - 1]!.length === 0) list.pop()
        if (list === this.tail) this.tailBytes -= take
        else this.headBytes -= take
        n -= take
      }
    }
  }

  private text(): string {
    const head = Buffer.concat(this.head).toString('utf8')
    const tail = Buffer.concat(this.tail).toString('utf8')
    if (this.cut === 0) return head + tail
    return `${head}\n[… ${this.cut} bytes of output cut here: at most ${this.limit} are kept …]\n${tail}`
  }

  private reset(): void {
    this.head = []
    this.tail = []
    this.headBytes = this.tailBytes = this.cut = 0
    this.window = Buffer.alloc(0)
    this.marker = null
  }
}
