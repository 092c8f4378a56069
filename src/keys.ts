/**
 * The private keys, parsed on the runner before any connection: a key that is damaged, encrypted
 * without its passphrase, or unlocked by a wrong passphrase fails here, naming the input, instead
 * of as a connection error on the first host.
 */
import { statSync } from 'node:fs'
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
    parse(
      'jump-private-key',
      settings.jumpPrivateKey,
      settings.jumpPassphrase ?? settings.passphrase,
      settings.jumpPassphrase !== undefined ? 'jump-passphrase' : 'passphrase'
    )
  const agent = agentSocket(settings)
  if (agent !== undefined && !statSync(agent, { throwIfNoEntry: false })?.isSocket())
    throw new SettingsError(
      'private-key',
      `is empty, and the ssh-agent socket SSH_AUTH_SOCK=${agent} does not exist on the runner`,
      'Start the agent (and add the key) in an earlier step of the same job, or pass private-key'
    )
}

/** The agent socket to authenticate with: SSH_AUTH_SOCK, when neither a key nor a password is given. */
export function agentSocket(settings: Settings): string | undefined {
  return settings.privateKey === undefined && settings.password === undefined
    ? settings.agentSocket
    : undefined
}

/** Whether the jump host has credentials of its own (any jump-* credential input); else it uses the hosts'. */
export function jumpCredentials(settings: Settings): {
  privateKey?: string
  passphrase?: string
  password?: string
  agent?: string
} {
  const own =
    settings.jumpPrivateKey !== undefined ||
    settings.jumpPassphrase !== undefined ||
    settings.jumpPassword !== undefined
  if (!own)
    return {
      privateKey: settings.privateKey,
      passphrase: settings.passphrase,
      password: settings.password,
      agent: agentSocket(settings)
    }
  return {
    privateKey: settings.jumpPrivateKey,
    passphrase: settings.jumpPrivateKey ? (settings.jumpPassphrase ?? settings.passphrase) : undefined,
    password: settings.jumpPassword
  }
}
