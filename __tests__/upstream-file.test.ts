import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import { applySplices, parseDirectives, tokenize, wordText } from '../src/strategies/upstream/conf-syntax.js'
import {
  findServer,
  parseManagedFile,
  stateOf,
  withServerState,
  type ServerState
} from '../src/strategies/upstream/managed-file.js'

// The shape of the origin document's example: a hash method, weights, failure parameters, a server
// kept out with down, a backup, keepalive, comments, odd spacing. (Its `max_fails =3` typo is a
// separate case below: nginx -t refuses it.)
const ORIGIN = `# managed by the deploy: upstream servers of the app
upstream app_backend {
    least_conn;
    keepalive 32;   # idle connections per worker

    server 10.0.0.11:8080 weight=5 max_fails=3 fail_timeout=15s;
    server 10.0.0.12:8080   weight=5  max_fails=3 fail_timeout=15s ;
    server 10.0.0.13:8080 max_fails=3 fail_timeout=15s;  # the small one
    server 10.0.0.14:8080 down;
    server 10.0.0.15:8080 backup;
}
`

describe('nginx syntax', () => {
  it('reads words, quotes, comments and ${variables} with their places in the text', () => {
    const text = `log_format main '$remote_addr "x" \\t' ; set $a "\${host}x"; # note {\nlocation / { return 200; }`
    const tokens = tokenize(text)
    expect(tokens.map(t => t.value)).toEqual([
      'log_format',
      'main',
      '$remote_addr "x" \t',
      ';',
      'set',
      '$a',
      '${host}x',
      ';',
      'location',
      '/',
      '{',
      'return',
      '200',
      ';',
      '}'
    ])
    for (const t of tokens) if (t.kind !== 'word') expect(text.slice(t.start, t.end)).toBe(t.value)
    expect(tokens.at(-1)!.line).toBe(2)
  })
  it('names the line of a syntax error', () => {
    expect(() => parseDirectives('upstream a {\n server x;\n')).toThrow('line 1: a { is never closed')
    expect(() => parseDirectives('server x\n}')).toThrow('line 2: unexpected }')
    expect(() => parseDirectives('a "b;\n')).toThrow('quote is never closed')
    expect(() => parseDirectives('a "b"c;')).toThrow('right after a quoted string')
  })
  it('writes words nginx reads back as they were (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), value => {
        const toks = tokenize(`x ${wordText(value)};`)
        expect(toks[1]!.value).toBe(value)
      }),
      { numRuns: 300 }
    )
  })
  it('applies splices from the end, refusing overlaps', () => {
    expect(
      applySplices('abcdef', [
        { start: 1, end: 2, text: 'X' },
        { start: 4, end: 4, text: 'Y' }
      ])
    ).toBe('aXcdYef')
    expect(() =>
      applySplices('abcdef', [
        { start: 1, end: 3, text: '' },
        { start: 2, end: 4, text: '' }
      ])
    ).toThrow('overlapping')
  })
})

describe('the managed file', () => {
  it('reads every parameter users rely on', () => {
    const f = parseManagedFile(ORIGIN, 'app_backend')
    expect(f.block.method).toBe('least_conn')
    expect(f.block.settings.get('keepalive')).toEqual(['32'])
    expect(f.block.servers.map(s => [s.address, s.weight, s.down, s.backup])).toEqual([
      ['10.0.0.11:8080', 5, false, false],
      ['10.0.0.12:8080', 5, false, false],
      ['10.0.0.13:8080', null, false, false],
      ['10.0.0.14:8080', null, true, false],
      ['10.0.0.15:8080', null, false, true]
    ])
    expect(findServer(f, '10.0.0.13:8080')!.params).toEqual(['max_fails=3', 'fail_timeout=15s'])
  })

  it('changes exactly one server line and nothing else', () => {
    const f = parseManagedFile(ORIGIN, 'app_backend')
    const down = withServerState(f, '10.0.0.12:8080', { down: true, weight: 5 })
    const changed = diffLines(ORIGIN, down)
    expect(changed).toEqual([
      [
        '    server 10.0.0.12:8080   weight=5  max_fails=3 fail_timeout=15s ;',
        '    server 10.0.0.12:8080   weight=5  max_fails=3 fail_timeout=15s down ;'
      ]
    ])
    const canary = withServerState(f, '10.0.0.13:8080', { down: false, weight: 1 })
    expect(diffLines(ORIGIN, canary)).toEqual([
      [
        '    server 10.0.0.13:8080 max_fails=3 fail_timeout=15s;  # the small one',
        '    server 10.0.0.13:8080 max_fails=3 fail_timeout=15s weight=1;  # the small one'
      ]
    ])
    const reweighted = withServerState(f, '10.0.0.11:8080', { down: false, weight: 2 })
    expect(diffLines(ORIGIN, reweighted)).toEqual([
      [
        '    server 10.0.0.11:8080 weight=5 max_fails=3 fail_timeout=15s;',
        '    server 10.0.0.11:8080 weight=2 max_fails=3 fail_timeout=15s;'
      ]
    ])
  })

  // The strategy never drops a weight the file has (down keeps it; canary and full weight set it).
  it('gives back the original file byte for byte after any sequence of changes (property)', () => {
    const f0 = parseManagedFile(ORIGIN, 'app_backend')
    const managed = ['10.0.0.11:8080', '10.0.0.12:8080', '10.0.0.13:8080']
    const weight = fc.integer({ min: 1, max: 100 })
    const change = fc.constantFrom(...managed).chain(address =>
      fc.tuple(
        fc.constant(address),
        fc.record({
          down: fc.boolean(),
          weight: findServer(f0, address)!.weight === null ? fc.option(weight, { nil: null }) : weight
        })
      )
    )
    fc.assert(
      fc.property(fc.array(change, { maxLength: 12 }), changes => {
        let text = ORIGIN
        for (const [address, to] of changes) {
          text = withServerState(parseManagedFile(text, 'app_backend'), address, to as ServerState)
          expect(stateOf(findServer(parseManagedFile(text, 'app_backend'), address)!)).toEqual(to)
        }
        for (const address of managed)
          text = withServerState(
            parseManagedFile(text, 'app_backend'),
            address,
            stateOf(findServer(f0, address)!)
          )
        expect(text).toBe(ORIGIN)
      }),
      { numRuns: 300 }
    )
  })

  it('keeps other blocks and top-level content as they are', () => {
    const text = `upstream other { server a:1; }\n# x\nupstream app { ip_hash; server b:2 weight=3; server c:2; }\nmap $a $b { default 1; }\n`
    const f = parseManagedFile(text, 'app')
    expect(f.upstreams).toEqual(['other', 'app'])
    expect(withServerState(f, 'b:2', { down: true, weight: 3 })).toBe(
      `upstream other { server a:1; }\n# x\nupstream app { ip_hash; server b:2 weight=3 down; server c:2; }\nmap $a $b { default 1; }\n`
    )
  })

  it.each([
    [
      'upstream app {\n server a:1 max_fails =3;\n server b:1;\n}',
      "line 2, server a:1: 'max_fails' needs a value (max_fails=...); a space before = is not allowed. Write max_fails=<value> without spaces"
    ],
    [
      'upstream app { server a:1 weight=0; server b:1; }',
      'weight=0 is invalid (nginx -t wants a weight of at least 1). Take a server out with down, not with weight=0'
    ],
    ['upstream app { server a:1 weight=2 weight=3; server b:1; }', 'the parameter weight is given twice'],
    ['upstream app { server a:1 slow; server b:1; }', "unknown parameter 'slow'"],
    [
      'upstream app { server a:1 fail_timeout=soon; }',
      "'fail_timeout=soon' has an invalid value. Give fail_timeout a time such as 10s"
    ],
    ['upstream app { ip_hash; server a:1 backup; server b:1; }', 'backup cannot be combined with ip_hash'],
    ['upstream app { ip_hash; least_conn; server a:1; }', 'sets ip_hash and least_conn'],
    ['upstream app { server a:1; server a:1; }', 'server a:1 is listed twice'],
    ['upstream app { keepalive 2; }', 'has no server line'],
    [
      'upstream other { server a:1; }',
      'it holds no upstream block named app (it holds: other). Fix upstream-name, or upstream-file'
    ],
    ['# nothing\n', 'it holds no upstream block at all'],
    ['upstream app { server a:1; }\nupstream app { server b:1; }', 'it holds 2 upstream blocks named app'],
    ['upstream app { server a:1;', 'it is not valid nginx syntax (line 1: a { is never closed with })'],
    ['upstream app { server; server b:1; }', 'a server line has no address']
  ])('refuses what nginx -t would refuse: %s', (text, message) => {
    expect(() => parseManagedFile(text, 'app')).toThrow(message)
  })

  it('also reads a space before = in the value position', () => {
    expect(() => parseManagedFile('upstream app { server a:1 max_fails= 3; server b:1; }', 'app')).toThrow(
      "'max_fails=' has an invalid value"
    )
    expect(() => parseManagedFile('upstream app { server a:1 weight =3; server b:1; }', 'app')).toThrow(
      'needs a value (weight=...); a space before = is not allowed'
    )
  })
})

/** Lines that differ, as [before, after] pairs (the texts have the same number of lines). */
function diffLines(a: string, b: string): [string, string][] {
  const x = a.split('\n')
  const y = b.split('\n')
  expect(y.length).toBe(x.length)
  return x.flatMap((l, i) => (l === y[i] ? [] : [[l, y[i]!] as [string, string]]))
}
