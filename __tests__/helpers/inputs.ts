/** A minimal set of inputs that readSettings accepts, for unit tests that vary one input at a time. */
import { readSettings, type Settings } from '../../src/settings.js'

/** Passes the private-key format check; never used to connect. */
const KEY =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n'

const VALID_INPUTS: Readonly<Record<string, string>> = {
  hosts: 'web1',
  'private-key': KEY,
  // A known_hosts line trusts no other host: tests may vary hosts freely (a bare fingerprint may not).
  'known-hosts': '* ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJhc2VsaW5lLWtleS1mb3ItdW5pdC10ZXN0cw==',
  binary: './nginx'
}

/** readSettings over VALID_INPUTS with some inputs replaced. */
export function settingsWith(over: Record<string, string>): Settings {
  const inputs = { ...VALID_INPUTS, ...over }
  return readSettings(name => inputs[name] ?? '')
}
