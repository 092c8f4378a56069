/** What an ELF header says, read on the runner (the host side compares it with `uname -m`). */

/** The architecture an ELF file is built for (as `uname -m` names it), '#!' for scripts, null otherwise. */
export function elfArch(head: Buffer): string | null {
  if (head.subarray(0, 2).toString('latin1') === '#!') return '#!'
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) return null
  const little = head[5] === 1
  const machine = little ? head.readUInt16LE(18) : head.readUInt16BE(18)
  const names: Record<number, string> = {
    0x03: 'i686',
    0x08: 'mips',
    0x14: 'ppc',
    0x15: little ? 'ppc64le' : 'ppc64',
    0x16: 's390x',
    0x28: 'arm',
    0x3e: 'x86_64',
    0xb7: 'aarch64',
    0xf3: 'riscv64'
  }
  return names[machine] ?? `elf-machine-${machine}`
}
