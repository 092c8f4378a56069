/**
 * Issue #13, item 2: host-fingerprints bound to their hosts. The attacks go through the inputs
 * as users write them (readSettings) and the check every connection makes (verifyHostKey): one
 * stolen host key must not impersonate the rest of the fleet, the jump host's fingerprint must not
 * pass for its targets, @revoked wins over a pin, and a padded fingerprint is no false alarm.
 */
import { describe, expect, it } from '@jest/globals'
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto'
import { fingerprintOf, verifyHostKey } from '../src/host/known-hosts.js'
import { settingsWith } from './helpers/inputs.js'

function ed25519Blob(): Buffer {
  const { publicKey } = generateKeyPairSync('ed25519')
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b])
  return Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)])
}

const keyA = ed25519Blob()
const keyB = ed25519Blob()
const keyJump = ed25519Blob()
const fp = fingerprintOf

/** The policy the connector builds from the inputs (src/main.ts connector). */
function policyFor(inputs: Record<string, string>) {
  const s = settingsWith({ 'known-hosts': '', ...inputs })
  return { knownHosts: s.knownHosts, fingerprints: s.hostFingerprints, insecureSkip: false }
}

describe('host-fingerprints are bound to their hosts', () => {
  it("does not accept host a's key for host b when both are pinned", () => {
    const policy = policyFor({ hosts: 'a\nb', 'host-fingerprints': `a=${fp(keyA)} b=${fp(keyB)}` })
    expect(verifyHostKey(policy, 'a', 22, keyA).ok).toBe(true)
    expect(verifyHostKey(policy, 'b', 22, keyB).ok).toBe(true)
    const stolen = verifyHostKey(policy, 'b', 22, keyA)
    expect(stolen.ok).toBe(false)
    expect(stolen.ok ? '' : stolen.reason).toMatch(/^HOST KEY MISMATCH for b: expected SHA256:/)
  })

  it('refuses bare fingerprints when the run connects to more than one host', () => {
    expect(() => policyFor({ hosts: 'a\nb', 'host-fingerprints': `${fp(keyA)} ${fp(keyB)}` })).toThrow(
      /Input 'host-fingerprints': '.*' names no host, and this run connects to 2 hosts.*Bind each fingerprint to its host: host=SHA256/
    )
  })

  it("does not let the jump host's fingerprint pass for its target", () => {
    expect(() => policyFor({ hosts: 'a', 'jump-host': 'bastion', 'host-fingerprints': fp(keyJump) })).toThrow(
      /connects to 2 hosts \(with the jump host\)/
    )
    const policy = policyFor({
      hosts: 'a',
      'jump-host': 'bastion',
      'host-fingerprints': `bastion=${fp(keyJump)}, a=${fp(keyA)}`
    })
    expect(verifyHostKey(policy, 'bastion', 22, keyJump).ok).toBe(true)
    expect(verifyHostKey(policy, 'a', 22, keyJump).ok).toBe(false)
  })

  it('binds [host]:port and matches host names case-insensitively; refuses a pin that names no host of the run', () => {
    const policy = policyFor({ hosts: 'Web1:2222', 'host-fingerprints': `[web1]:2222=${fp(keyA)}` })
    expect(verifyHostKey(policy, 'Web1', 2222, keyA).ok).toBe(true)
    expect(() => policyFor({ hosts: 'web1', 'host-fingerprints': `web2=${fp(keyA)}` })).toThrow(
      /names web2, which is neither in hosts nor the jump-host/
    )
  })

  it('still accepts a bare fingerprint for a single host', () => {
    expect(verifyHostKey(policyFor({ hosts: 'a', 'host-fingerprints': fp(keyA) }), 'a', 22, keyA).ok).toBe(
      true
    )
  })
})

describe('revocation and padding', () => {
  it('refuses a key marked @revoked even when a fingerprint pins it', () => {
    const policy = policyFor({
      hosts: 'a',
      'host-fingerprints': `a=${fp(keyA)}`,
      'known-hosts': `@revoked a ssh-ed25519 ${keyA.toString('base64')}`
    })
    const v = verifyHostKey(policy, 'a', 22, keyA)
    expect(v.ok).toBe(false)
    expect(v.ok ? '' : v.reason).toMatch(/is marked @revoked in known-hosts/)
  })

  it('reads a padded fingerprint (SHA256:...=) as the same fingerprint, with no false alarm', () => {
    const policy = policyFor({ hosts: 'a', 'host-fingerprints': `a=${fp(keyA)}=` })
    expect(verifyHostKey(policy, 'a', 22, keyA).ok).toBe(true)
  })

  it('matches hashed known_hosts names case-insensitively, as OpenSSH does (item 7)', () => {
    const salt = randomBytes(20)
    const mac = createHmac('sha1', salt).update('web1.example.com').digest('base64')
    const hashed = `|1|${salt.toString('base64')}|${mac} ssh-ed25519 ${keyA.toString('base64')}`
    expect(
      verifyHostKey(
        { knownHosts: hashed, fingerprints: [], insecureSkip: false },
        'Web1.Example.COM',
        22,
        keyA
      ).ok
    ).toBe(true)
  })
})
