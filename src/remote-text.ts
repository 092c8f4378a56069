/**
 * Text that came from a host (command output, health bodies, the lock owner, state.json fields,
 * process titles) is data, never instructions: not a workflow command for the runner (`::name::`
 * at the start of a line, `##[` anywhere), not a terminal escape sequence, not Markdown in the
 * job summary. The log adapters (main.ts, cli.ts) pass every line through `neutralize`, so a
 * message that embeds remote text is covered wherever it was built.
 */

// C0 controls but tab and line feed, DEL, and C1 controls (0x9b is a one-byte CSI on some terminals).
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

const visible = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`

/** A log text the runner cannot take for a command: controls shown as \xHH, `::` and `##[` broken. */
export function neutralize(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(CONTROL, visible)
    .replace(/##\[/g, '## [')
    .replace(/^(\s*):(?=:)/gm, '$1: ')
}

/** Remote text as one bounded line of a message: neutralised, line breaks shown as ⏎. */
export function remoteLine(text: string, max = 500): string {
  const one = neutralize(text.trim()).replace(/\n/g, ' ⏎ ')
  return one.length > max ? `${one.slice(0, max - 1)}…` : one
}

// CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte ESC sequences.
const ESCAPES = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[@-_]?/g

/** For a terminal: escape sequences removed, other controls shown as \xHH. */
export function stripTerminal(text: string): string {
  return text.replace(ESCAPES, '').replace(/\r\n?/g, '\n').replace(CONTROL, visible)
}

/**
 * Text shown as text in Markdown (the job summary): HTML and Markdown punctuation escaped, no line
 * breaks, and URLs broken so that GitHub does not turn them into links.
 */
export function markdownText(text: string): string {
  return neutralize(text)
    .replace(/\s*\n\s*/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]!~|]/g, '\\$&')
    .replace(/:\/\//g, '&#58;//')
    .replace(/\bwww\./gi, m => `${m.slice(0, 3)}&#46;`)
}

// scheme://user:password@ (or user@): the userinfo part of a URL.
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#@\s]*@/gi

/** URLs in a text with their user and password replaced by ***: health-url may carry credentials. */
export function redactUrls(text: string): string {
  return text.replace(USERINFO, '$1***@')
}
