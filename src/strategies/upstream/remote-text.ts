/**
 * Text that came from a host (a file, a command's output) on its way to a log, a terminal or the
 * job summary: control characters (escape sequences, carriage returns that hide lines) become
 * visible, GitHub workflow commands lose their power, and the length is bounded.
 */
export function remoteText(text: string, max = 2000): string {
  let s = text.replace(/\r\n/g, '\n').replace(/[\u0000-\u0008\u000b-\u001f\u007f\u0080-\u009f]/g, c => {
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`
  })
  // A line starting with :: is a workflow command on GitHub (set-output, add-mask, stop-commands).
  s = s.replace(/^(\s*)::/gm, '$1:\u200b:')
  s = s.trim()
  return s.length > max ? s.slice(0, max - 1) + '…' : s
}
