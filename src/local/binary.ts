/** The local new binary, checked before any connection: it exists, is not empty, and is a program. */
import { open, stat } from 'node:fs/promises'
import { SettingsError } from '../settings.js'
import { elfArch } from './elf.js'
import { sha256File } from './sha256.js'

export interface LocalBinary {
  localPath: string
  sha256: string
  bytes: number
  /** From the ELF header; null for a #! script (taken as it is). */
  arch: string | null
}

export async function inspectBinary(path: string): Promise<LocalBinary> {
  const info = await stat(path).catch(() => null)
  if (info === null)
    throw new SettingsError(
      'binary',
      `${path} does not exist on the runner`,
      'Build it in an earlier step, or fix the path'
    )
  if (!info.isFile())
    throw new SettingsError('binary', `${path} is not a regular file`, 'Give the path of the built binary')
  if (info.size === 0)
    throw new SettingsError('binary', `${path} is empty`, 'Check the build step that writes it')
  const fh = await open(path, 'r')
  const head = Buffer.alloc(64)
  try {
    await fh.read(head, 0, 64, 0)
  } finally {
    await fh.close()
  }
  const arch = elfArch(head)
  if (arch === null)
    throw new SettingsError(
      'binary',
      `${path} is neither an ELF executable nor a #! script`,
      'Give the compiled server binary'
    )
  return {
    localPath: path,
    sha256: await sha256File(path),
    bytes: info.size,
    arch: arch === '#!' ? null : arch
  }
}
