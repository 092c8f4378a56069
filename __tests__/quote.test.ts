import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import fc from 'fast-check'
import { commandLine, quote } from '../src/host/quote.js'

describe('quote', () => {
  it('leaves plain words alone and quotes the rest', () => {
    expect(quote('/srv/app/sbin/nginx')).toBe('/srv/app/sbin/nginx')
    expect(quote("it's")).toBe(`'it'\\''s'`)
    expect(quote('')).toBe("''")
    expect(commandLine(['kill', '-s', 'USR2', '--', '42'])).toBe('kill -s USR2 -- 42')
  })
  it('refuses NUL bytes, which no process can receive', () => {
    expect(() => quote('a\0b')).toThrow('NUL')
  })
  it('round-trips random strings through a local sh (the remote one is tested in ssh-host)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: 'binary' }).filter(s => !s.includes('\0')),
          { minLength: 1, maxLength: 4 }
        ),
        words => {
          const out = execFileSync('sh', ['-c', `printf '%s\\0' ${commandLine(words)}`])
          expect(out.toString('utf8').split('\0').slice(0, -1)).toEqual(words)
        }
      ),
      { numRuns: 100 }
    )
  })
})
