/** Issue #13, item 5: the remote shell's output is read in linear time and kept bounded. */
import { describe, expect, it } from '@jest/globals'
import { OutputReader } from '../src/host/output-reader.js'

const MARK = '\nZD0123456789abcdef01234567 '

describe('OutputReader', () => {
  it('finds the end marker split at every byte, with the status after it', () => {
    const stream = Buffer.from(`line 1\nline 2${MARK}17\n`)
    for (let cut = 1; cut < stream.length; cut++) {
      const r = new OutputReader()
      r.expect(MARK)
      r.push(stream.subarray(0, cut))
      if (cut < stream.length - 1) expect(r.result()).toBeNull()
      r.push(stream.subarray(cut))
      expect(r.result()).toEqual({ text: 'line 1\nline 2', rest: '17' })
    }
  })

  it('reads 16 MB in small chunks with one pass over the bytes', () => {
    const r = new OutputReader()
    r.expect(MARK)
    const chunk = Buffer.alloc(32 * 1024, 'x')
    const chunks = 512 // 16 MB
    for (let i = 0; i < chunks; i++) r.push(chunk)
    r.push(Buffer.from(`${MARK}0\n`))
    expect(r.result()?.rest).toBe('0')
    // Each byte searched once, plus the marker-sized window carried to the next chunk.
    expect(r.scanned).toBeLessThanOrEqual(
      chunks * chunk.length + (chunks + 1) * (MARK.length + 16) + MARK.length + 3
    )
  })

  it('keeps at most its limit, the first and the last halves, and says how much was cut', () => {
    const r = new OutputReader(1000)
    r.expect(MARK)
    r.push(Buffer.from('START'))
    for (let i = 0; i < 100; i++) r.push(Buffer.alloc(100, 'y'))
    r.push(Buffer.from(`THE END${MARK}1\n`))
    const text = r.result()!.text
    expect(text.startsWith('STARTyyy')).toBe(true)
    expect(text.endsWith('yyyTHE END')).toBe(true)
    expect(text).toMatch(/\n\[… 9012 bytes of output cut here: at most 1000 are kept …\]\n/)
    expect(text.length).toBeLessThan(1100)
  })

  it('keeps what arrives after a marker for the next command, bounded', () => {
    const r = new OutputReader(1000)
    r.expect(MARK)
    r.push(Buffer.from(`a${MARK}0\nearly`))
    expect(r.result()?.text).toBe('a')
    const next = '\nZDffffffffffffffffffffffff '
    r.expect(next)
    r.push(Buffer.from(` b${next}2\n`))
    expect(r.result()).toEqual({ text: 'early b', rest: '2' })
  })
})
