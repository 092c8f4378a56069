/**
 * The only place where strings become shell words. Every remote command is an argv list; it is
 * turned into one POSIX sh command line here, each word single-quoted so that nothing in it
 * (quotes, $(), backticks, globs, newlines, non-ASCII) is interpreted by the remote shell.
 */

/** Quotes one argument for POSIX sh. NUL bytes cannot be passed to a process at all. */
export function quote(arg: string): string {
  if (arg.includes('\0'))
    throw new Error('a command argument contains a NUL byte, which no process can receive')
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/** Joins an argv list into one sh command line. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('empty command')
  return argv.map(quote).join(' ')
}
