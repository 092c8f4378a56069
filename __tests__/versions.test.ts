/**
 * Version ordering: Debian's rule checked against dpkg itself (`dpkg --compare-versions`, on
 * every Debian machine and in CI) on hand-picked and generated versions; semver's rule on
 * semver.org's own examples; which rule applies to which pair.
 */
import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import fc from 'fast-check'
import { compareVersions, isVersionText, parseDebian } from '../src/releases/versions.js'

/** dpkg's verdicts for many pairs, in one shell (one dpkg run per comparison). */
function dpkgOrders(pairs: [string, string][]): number[] {
  const script =
    'while IFS=" " read -r a b; do ' +
    'if dpkg --compare-versions "$a" lt "$b"; then echo -1; ' +
    'elif dpkg --compare-versions "$a" eq "$b"; then echo 0; else echo 1; fi; done'
  const out = execFileSync('sh', ['-c', script], {
    input: pairs.map(([a, b]) => `${a} ${b}`).join('\n') + '\n',
    encoding: 'utf8'
  })
  return out.trim().split('\n').map(Number)
}

const debianOrder = (a: string, b: string): number => {
  const r = compareVersions(a, b)
  if (r === null) throw new Error(`cannot compare ${a} and ${b}`)
  return r.order
}

describe("Debian's ordering", () => {
  const cases: [string, string][] = [
    ['1.22.1', '1.22.1-9+deb12u11'],
    ['1.22.1-9+deb12u9', '1.22.1-9+deb12u11'],
    ['1.22.1-9', '1.22.1-9+deb12u1'],
    ['1.22.1+deb12u9', '1.22.1+deb12u11'],
    ['1.22.1~rc1', '1.22.1'],
    ['1.22.1~~', '1.22.1~'],
    ['1.22.1~', '1.22.1'],
    ['1:1.0', '2.0'],
    ['0:1.0', '1.0'],
    ['1.0-1', '1.0-1ubuntu1'],
    ['1.0-1ubuntu1', '1.0-2'],
    ['1.0a', '1.0+'],
    ['1.0A', '1.0a'],
    ['1.0.', '1.0'],
    ['1.001', '1.1'],
    ['1.2.3', '1.10.0'],
    ['2.4.57-2', '2.4.57-2+deb12u2'],
    ['1.18.0-6ubuntu14.4', '1.18.0-6ubuntu14.10'],
    ['7.4.0-2~bpo11+1', '7.4.0-2'],
    ['99999999999999999999.1', '99999999999999999998.9'],
    ['2:1.0~rc1-1', '2:1.0-1']
  ]

  it('agrees with dpkg --compare-versions on hand-picked pairs, both ways', () => {
    const both = cases.flatMap(([a, b]) => [[a, b] as [string, string], [b, a] as [string, string]])
    const want = dpkgOrders(both)
    both.forEach(([a, b], i) => expect([a, b, debianOrder(a, b)]).toEqual([a, b, want[i]]))
    // The issue's case, spelled out: a security update of 1.22.1 is higher than 1.22.1.
    expect(compareVersions('1.22.1-9+deb12u11', '1.22.1')).toEqual({ order: 1, rule: 'debian' })
  })

  it('agrees with dpkg --compare-versions on generated versions', () => {
    const chunk = fc.constantFrom('0', '1', '2', '9', '10', '01', 'a', 'b', 'Z', '.', '+', '~', 'deb12u')
    const part = (first: fc.Arbitrary<string>) =>
      fc.tuple(first, fc.array(chunk, { maxLength: 6 })).map(([f, rest]) => f + rest.join(''))
    const version = fc
      .tuple(
        fc.option(fc.constantFrom('0', '1', '2', '10'), { nil: undefined }),
        part(fc.constantFrom('0', '1', '2', '10')),
        fc.option(part(fc.constantFrom('0', '1', '9', 'a', 'deb')), { nil: undefined })
      )
      .map(([e, u, r]) => `${e !== undefined ? `${e}:` : ''}${u}${r !== undefined ? `-${r}` : ''}`)
    const pairs = fc.sample(fc.tuple(version, version), { numRuns: 200, seed: 14 })
    const want = dpkgOrders(pairs)
    pairs.forEach(([a, b], i) => {
      const got = compareVersions(a, b)
      expect(got).not.toBeNull()
      expect([a, b, got!.order]).toEqual([a, b, want[i]])
    })
  })

  it('keeps dpkg syntax: epoch, upstream, the last hyphen starts the revision', () => {
    expect(parseDebian('2:1.0-3-4')).toEqual({ epoch: '2', upstream: '1.0-3', revision: '4' })
    expect(parseDebian('1.22.1')).toEqual({ epoch: '0', upstream: '1.22.1', revision: '' })
    expect(parseDebian('a1.0')).toBeNull()
    expect(parseDebian('1.0:2')).toBeNull()
    expect(parseDebian('1.0-')).toBeNull()
    expect(parseDebian('1.0 2')).toBeNull()
  })
})

describe('rules', () => {
  it('uses semver for plain semantic versions (semver.org §11 examples)', () => {
    const ordered = [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '2.0.0',
      '2.1.0',
      '2.1.1'
    ]
    for (let i = 0; i + 1 < ordered.length; i++) {
      expect(compareVersions(ordered[i]!, ordered[i + 1]!)).toEqual({ order: -1, rule: 'semver' })
      expect(compareVersions(ordered[i + 1]!, ordered[i]!)).toEqual({ order: 1, rule: 'semver' })
    }
    expect(compareVersions('v1.2.3', '1.2.3')).toEqual({ order: 0, rule: 'semver' })
  })

  it("uses Debian's rule as soon as one side is not plain semver", () => {
    expect(compareVersions('1.22.1', '1.22.1-9')).toEqual({ order: -1, rule: 'debian' })
    expect(compareVersions('1.22.1+deb12u9', '1.22.1+deb12u11')).toEqual({ order: -1, rule: 'debian' })
    expect(compareVersions('1.27', '1.27.1')).toEqual({ order: -1, rule: 'debian' })
    expect(compareVersions('1:1.0', '2.0.0')).toEqual({ order: 1, rule: 'debian' })
  })

  it('cannot compare what neither rule reads', () => {
    expect(compareVersions('latest', '1.0.0')).toBeNull()
    expect(compareVersions('1.0.0', 'release 2')).toBeNull()
    expect(isVersionText('1.22.1-9+deb12u11')).toBe(true)
    expect(isVersionText('2:1.0~rc1-1')).toBe(true)
    expect(isVersionText('v1.27.3')).toBe(true)
    expect(isVersionText('latest')).toBe(false)
    expect(isVersionText('1.0; rm -rf /')).toBe(false)
  })
})
