import { describe, expect, it } from '@jest/globals'
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto'
import { fingerprintOf, hostKeyAlgorithms, keyTypeOf, verifyHostKey } from '../src/host/known-hosts.js'

/** An ssh-ed25519 public key blob, as a host presents it. */
function ed25519Blob(): Buffer {
  const { publicKey } = generateKeyPairSync('ed25519')
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b])
  return Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)])
}

const key = ed25519Blob()
const other = ed25519Blob()
const line = (pattern: string, blob: Buffer) => `${pattern} ssh-ed25519 ${blob.toString('base64')}`
const policy = (knownHosts: string, fingerprints: string[] = [], insecureSkip = false) => ({
  knownHosts,
  fingerprints,
  insecureSkip
})

describe('host key verification', () => {
  it('reads the key type and computes the OpenSSH fingerprint form', () => {
    expect(keyTypeOf(key)).toBe('ssh-ed25519')
    expect(fingerprintOf(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
  })

  it('accepts a matching known_hosts line, with [host]:port for other ports', () => {
    expect(verifyHostKey(policy(line('web1', key)), 'web1', 22, key).ok).toBe(true)
    expect(verifyHostKey(policy(line('[127.0.0.11]:2222', key)), '127.0.0.11', 2222, key).ok).toBe(true)
    // A port-22 entry does not vouch for another port.
    expect(verifyHostKey(policy(line('127.0.0.11', key)), '127.0.0.11', 2222, key).ok).toBe(false)
  })

  it('accepts comma lists, wildcards and hashed names, honours negation', () => {
    expect(verifyHostKey(policy(line('a,web*,c', key)), 'web7', 22, key).ok).toBe(true)
    expect(
      verifyHostKey(policy(line('*.example.com,!bad.example.com', key)), 'bad.example.com', 22, key).ok
    ).toBe(false)
    const salt = randomBytes(20)
    const hash = createHmac('sha1', salt).update('[10.1.2.3]:2200').digest('base64')
    expect(
      verifyHostKey(policy(line(`|1|${salt.toString('base64')}|${hash}`, key)), '10.1.2.3', 2200, key).ok
    ).toBe(true)
  })

  it('refuses a different key, naming expected and received fingerprints', () => {
    const v = verifyHostKey(policy(line('web1', other)), 'web1', 22, key)
    expect(v.ok).toBe(false)
    if (!v.ok) {
      expect(v.reason).toContain('MISMATCH')
      expect(v.reason).toContain(fingerprintOf(other))
      expect(v.reason).toContain(fingerprintOf(key))
    }
  })

  it('refuses an unknown host (fail closed) and a @revoked key', () => {
    const v = verifyHostKey(policy(line('web2', key)), 'web1', 22, key)
    expect(v.ok).toBe(false)
    if (!v.ok) expect(v.reason).toContain('no trusted host key is known for web1')
    const revoked = `@revoked * ssh-ed25519 ${key.toString('base64')}\n${line('web1', key)}`
    expect(verifyHostKey(policy(revoked), 'web1', 22, key).ok).toBe(false)
  })

  it('accepts a listed SHA256 fingerprint; insecure skip accepts anything', () => {
    expect(verifyHostKey(policy('', [fingerprintOf(key)]), 'any', 22, key).ok).toBe(true)
    expect(verifyHostKey(policy('', [fingerprintOf(other)]), 'any', 22, key).ok).toBe(false)
    expect(verifyHostKey(policy('', [], true), 'any', 22, key).ok).toBe(true)
  })
})

describe('host key algorithms offered, as OpenSSH does', () => {
  const rsa = (pattern: string) => `${pattern} ssh-rsa ${Buffer.from('rsa-blob').toString('base64')}`
  const ecdsa = (pattern: string) =>
    `${pattern} ecdsa-sha2-nistp256 ${Buffer.from('ecdsa-blob').toString('base64')}`

  it('offers the algorithms of the keys trusted for the host, RSA as rsa-sha2-512/256', () => {
    expect(hostKeyAlgorithms(policy(rsa('[h]:2222')), 'h', 2222)).toEqual(['rsa-sha2-512', 'rsa-sha2-256'])
    expect(hostKeyAlgorithms(policy([rsa('h'), line('h', key), ecdsa('h')].join('\n')), 'h', 22)).toEqual([
      'ssh-ed25519',
      'ecdsa-sha2-nistp256',
      'rsa-sha2-512',
      'rsa-sha2-256'
    ])
    // Lines of other hosts, revoked keys and CAs do not count.
    expect(
      hostKeyAlgorithms(policy([rsa('other'), `@revoked ${rsa('h')}`].join('\n')), 'h', 22)
    ).toBeUndefined()
  })

  it('with fingerprints only, asks for each key family in turn', () => {
    const p = policy('', ['SHA256:' + 'A'.repeat(43)])
    expect(hostKeyAlgorithms(p, 'h', 22)).toContain('ssh-ed25519')
    expect(hostKeyAlgorithms(p, 'h', 22, [0])).toEqual([
      'ecdsa-sha2-nistp256',
      'ecdsa-sha2-nistp384',
      'ecdsa-sha2-nistp521',
      'rsa-sha2-512',
      'rsa-sha2-256'
    ])
    expect(hostKeyAlgorithms(p, 'h', 22, [0, 1, 2])).toEqual([])
  })

  it('refuses a host trusted only through @cert-authority, saying why', () => {
    const v = verifyHostKey(
      policy(`@cert-authority *.example.com ${line('', key).trim()}`),
      'web.example.com',
      22,
      key
    )
    expect(v.ok).toBe(false)
    expect(!v.ok && v.reason).toMatch(
      /only through a @cert-authority line, and host certificates cannot be checked here/
    )
  })
})
