/**
 * The private keys, parsed on the runner before any connection: a key that is damaged, encrypted
 * without its passphrase, or unlocked by a wrong passphrase fails here, naming the input, instead
 * of as a connection error on the first host.
 */
import ssh2 from 'ssh2'
import { SettingsError, type Settings } from './settings.js'

function parse(input: string, key: string, passphrase: string | undefined, passphraseInput: string): void {
  const parsed = ssh2.utils.parseKey(key, passphrase)
  const error = Array.isArray(parsed) ? undefined : parsed instanceof Error ? parsed : undefined
  if (error === undefined) return
  // ssh2's message may quote bytes of the key ("Unsupported OpenSSH key magic: <bytes>"): only its kind is shown.
  const why = error.message.replace(/:[\s\S]*$/, '').replace(/[^A-Za-z0-9 ,.()-]/g, '?')
  if (/no passphrase given/i.test(why))
    throw new SettingsError(
      input,
      'is encrypted and no passphrase is given',
      `Pass its passphrase in ${passphraseInput}`
    )
  if (/bad passphrase|integrity check failed|decrypt/i.test(why))
    throw new SettingsError(
      passphraseInput,
      `does not unlock ${input} (${why})`,
      `Give the passphrase of that key`
    )
  throw new SettingsError(
    input,
    `cannot be read as a private key (${why})`,
    'Store the whole key file, unchanged (ssh-keygen -t ed25519 writes one), in a secret'
  )
}

/** Throws SettingsError when a key of the settings cannot be used. Secrets never appear in the message. */
export function checkKeys(settings: Settings): void {
  if (settings.privateKey !== undefined)
    parse('private-key', settings.privateKey, settings.passphrase, 'passphrase')
  if (settings.jumpPrivateKey !== undefined)
    parse('jump-private-key', settings.jumpPrivateKey, settings.passphrase, 'passphrase')
}
