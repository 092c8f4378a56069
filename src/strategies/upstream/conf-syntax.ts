/**
 * nginx configuration syntax, as far as the managed file needs it: tokens with their exact place
 * in the text, and directives (simple or with a block) built from them. Nothing is normalised:
 * the writer splices changed tokens into the original text, so every byte it does not change
 * (comments, blank lines, indentation, other blocks) comes back as it was.
 *
 * The rules follow nginx's own reader: words end at whitespace, `;`, `{` or `}`; `#` starts a
 * comment only where a word could start; "..." and '...' quote, with backslash escapes; `${name}`
 * keeps its braces inside a word.
 */

export type TokenKind = 'word' | ';' | '{' | '}'

export interface Token {
  kind: TokenKind
  /** The word with quotes and escapes resolved (for ; { } the character itself). */
  value: string
  /** Offsets of the token's text in the file, quotes included. */
  start: number
  end: number
  line: number
}

export interface Directive {
  name: string
  nameToken: Token
  args: Token[]
  /** The `;` or the closing `}`. */
  endToken: Token
  /** Directives inside `{ }`; undefined for a simple directive. */
  children?: Directive[]
  line: number
}

/** The file is not valid nginx syntax; `line` is 1-based. */
export class ConfSyntaxError extends Error {
  constructor(
    readonly line: number,
    problem: string
  ) {
    super(`line ${line}: ${problem}`)
    this.name = 'ConfSyntaxError'
  }
}

const SPACE = /[ \t\r\n]/

/** What nginx makes of a backslash and the character after it (others keep the backslash). */
function unescape(e: string): string {
  if (e === 'n') return '\n'
  if (e === 't') return '\t'
  if (e === 'r') return '\r'
  return e === '"' || e === "'" || e === '\\' ? e : '\\' + e
}

export function tokenize(text: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  let line = 1
  const n = text.length
  while (i < n) {
    const c = text[i]!
    if (c === '\n') {
      line++
      i++
    } else if (SPACE.test(c)) {
      i++
    } else if (c === '#') {
      while (i < n && text[i] !== '\n') i++
    } else if (c === ';' || c === '{' || c === '}') {
      tokens.push({ kind: c, value: c, start: i, end: i + 1, line })
      i++
    } else if (c === '"' || c === "'") {
      const start = i
      const startLine = line
      let value = ''
      i++
      for (;;) {
        if (i >= n) throw new ConfSyntaxError(startLine, `a ${c} quote is never closed`)
        const d = text[i]!
        if (d === '\\' && i + 1 < n) {
          const e = text[i + 1]!
          value += unescape(e)
          if (e === '\n') line++
          i += 2
          continue
        }
        if (d === c) break
        if (d === '\n') line++
        value += d
        i++
      }
      i++
      if (i < n && !SPACE.test(text[i]!) && !';{}'.includes(text[i]!))
        throw new ConfSyntaxError(line, `unexpected ${JSON.stringify(text[i])} right after a quoted string`)
      tokens.push({ kind: 'word', value, start, end: i, line: startLine })
    } else {
      const start = i
      let value = ''
      while (i < n) {
        const d = text[i]!
        if (SPACE.test(d) || d === ';' || d === '{' || d === '}') {
          // `${name}`: the braces belong to the variable, not to a block.
          if (d === '{' && value.endsWith('$')) {
            const close = text.indexOf('}', i)
            if (close < 0) throw new ConfSyntaxError(line, 'a ${ variable is never closed')
            value += text.slice(i, close + 1)
            i = close + 1
            continue
          }
          break
        }
        if (d === '\\' && i + 1 < n) {
          value += unescape(text[i + 1]!)
          i += 2
          continue
        }
        value += d
        i++
      }
      tokens.push({ kind: 'word', value, start, end: i, line })
    }
  }
  return tokens
}

/** Builds the directive tree of a whole file (or of what an `include` brings in). */
export function parseDirectives(text: string): Directive[] {
  const tokens = tokenize(text)
  let pos = 0
  const block = (depth: number, opener?: Token): Directive[] => {
    const out: Directive[] = []
    for (;;) {
      const t = tokens[pos]
      if (t === undefined) {
        if (opener) throw new ConfSyntaxError(opener.line, 'a { is never closed with }')
        return out
      }
      if (t.kind === '}') {
        if (!opener) throw new ConfSyntaxError(t.line, 'unexpected } (no block is open)')
        return out
      }
      if (t.kind !== 'word')
        throw new ConfSyntaxError(t.line, `unexpected ${t.value} where a directive starts`)
      pos++
      const args: Token[] = []
      for (;;) {
        const a = tokens[pos]
        if (a === undefined)
          throw new ConfSyntaxError(t.line, `the directive ${t.value} does not end with ; or a { } block`)
        if (a.kind === 'word') {
          args.push(a)
          pos++
          continue
        }
        if (a.kind === ';') {
          pos++
          out.push({ name: t.value, nameToken: t, args, endToken: a, line: t.line })
          break
        }
        if (a.kind === '{') {
          pos++
          const children = block(depth + 1, a)
          const close = tokens[pos]!
          pos++
          out.push({ name: t.value, nameToken: t, args, endToken: close, children, line: t.line })
          break
        }
        throw new ConfSyntaxError(a.line, `unexpected } inside the directive ${t.value} (a ; is missing)`)
      }
    }
  }
  const top = block(0)
  if (pos < tokens.length) throw new ConfSyntaxError(tokens[pos]!.line, 'unexpected } (no block is open)')
  return top
}

/** Writes one word so that nginx reads it back as `value`. */
export function wordText(value: string): string {
  if (value !== '' && !/[\s;{}"'#\\$]/.test(value)) return value
  return `"${value.replace(/(["\\])/g, '\\$1')}"`
}

/** One change to the text: replace [start, end) with `text`. */
export interface Splice {
  start: number
  end: number
  text: string
}

/** Applies non-overlapping splices (any order) to the text. */
export function applySplices(text: string, splices: Splice[]): string {
  const sorted = [...splices].sort((a, b) => b.start - a.start)
  let out = text
  let limit = Infinity
  for (const s of sorted) {
    if (s.end > limit || s.start > s.end) throw new Error('overlapping changes to the managed file')
    out = out.slice(0, s.start) + s.text + out.slice(s.end)
    limit = s.start
  }
  return out
}
