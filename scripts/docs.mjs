// Docs that stay true.
//
//   node scripts/docs.mjs            writes, from action.yml, the inputs and outputs tables of
//                                    docs/inputs.md (between <!-- inputs --> / <!-- /inputs --> and
//                                    <!-- outputs --> / <!-- /outputs -->) and src/inputs.ts (what the
//                                    command line offers as flags and --help), and src/version.ts
//                                    from package.json's version (what --version prints)
//   node scripts/docs.mjs --check    exits 1 when any of them differs from its source, when
//                                    docs/troubleshooting.md misses an error message the code can
//                                    produce or quotes one the code no longer has, or when a relative
//                                    link in README.md, CHANGELOG.md, SECURITY.md or docs/ is broken
//   node scripts/docs.mjs --messages lists the error messages found in src/
//   --root DIR                       works on another checkout (tests)
//
// Troubleshooting entries quote messages in lines that start with `> `, one code span per message
// fragment, `…` where the message has a variable part: > `the new binary exited at once`
// Every error message in src/ must contain one of the quoted fragments, and every quoted fragment
// must appear in some message in src/.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { parse } from 'yaml'
import * as prettier from 'prettier'

const args = process.argv.slice(2)
const check = args.includes('--check')
const rootAt = args.indexOf('--root')
const root = resolve(rootAt >= 0 ? args[rootAt + 1] : new URL('..', import.meta.url).pathname)

const INPUTS_DOC = join(root, 'docs/inputs.md')
const TROUBLESHOOTING = join(root, 'docs/troubleshooting.md')
const ACTION = join(root, 'action.yml')
const INPUTS_TS = join(root, 'src/inputs.ts')
const VERSION_TS = join(root, 'src/version.ts')

async function format(text, parser) {
  const config = (await prettier.resolveConfig(INPUTS_DOC)) ?? {}
  return prettier.format(text, { ...config, parser })
}

const oneLine = s =>
  String(s ?? '')
    .replace(/\s+/g, ' ')
    .trim()
const mdCell = s => oneLine(s).replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const code = s => (s.includes('`') ? `\`\` ${s} \`\`` : `\`${s}\``)

function readAction() {
  const action = parse(readFileSync(ACTION, 'utf8'))
  const inputs = Object.entries(action.inputs ?? {}).map(([name, spec]) => ({
    name,
    description: oneLine(spec?.description),
    default: spec?.default === undefined ? undefined : String(spec.default),
    required: spec?.required === true
  }))
  const outputs = Object.entries(action.outputs ?? {}).map(([name, spec]) => ({
    name,
    description: oneLine(spec?.description)
  }))
  return { inputs, outputs }
}

async function inputsTable(inputs) {
  const rows = inputs.map(i => {
    const dflt = i.required ? '**required**' : i.default ? code(i.default) : ''
    return `| ${code(i.name)} | ${dflt} | ${mdCell(i.description)} |`
  })
  return (
    await format(['| Input | Default | Description |', '| --- | --- | --- |', ...rows].join('\n'), 'markdown')
  ).trim()
}

async function outputsTable(outputs) {
  const rows = outputs.map(o => `| ${code(o.name)} | ${mdCell(o.description)} |`)
  return (await format(['| Output | Description |', '| --- | --- |', ...rows].join('\n'), 'markdown')).trim()
}

async function inputsModule(inputs, outputs) {
  const text = [
    '// Generated from action.yml by scripts/docs.mjs (npm run docs). Do not edit by hand.',
    '',
    '/** One input of action.yml: the command line offers it as --<name> and ZERODOWN_<NAME>. */',
    'export interface InputSpec {',
    '  name: string',
    '  description: string',
    '  default?: string',
    '  required: boolean',
    '}',
    '',
    `export const INPUTS: readonly InputSpec[] = ${JSON.stringify(inputs, null, 2)}`,
    '',
    `export const OUTPUTS: readonly { name: string; description: string }[] = ${JSON.stringify(outputs, null, 2)}`,
    ''
  ].join('\n')
  return format(text, 'typescript')
}

async function versionModule() {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const text = [
    '// Generated from package.json by scripts/docs.mjs (npm run docs). Do not edit by hand.',
    '',
    '/** The version of zerodown-action this bundle is (what --version prints). */',
    `export const VERSION = ${JSON.stringify(version)}`,
    ''
  ].join('\n')
  return format(text, 'typescript')
}

function replaceBetween(text, marker, body) {
  const open = `<!-- ${marker} -->`
  const close = `<!-- /${marker} -->`
  const a = text.indexOf(open)
  const b = text.indexOf(close)
  if (a < 0 || b < a) throw new Error(`docs/inputs.md has no ${open} ... ${close} markers`)
  return text.slice(0, a) + `${open}\n\n${body}\n\n` + text.slice(b)
}

// ------------------------------------------------------------------- error messages in src/

function sourceFiles(dir) {
  const out = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sourceFiles(p))
    else if (/\.ts$/.test(entry.name) && entry.name !== 'inputs.ts') out.push(p)
  }
  return out
}

/** Reads a JS string or template literal at i; `${...}` becomes …. Returns [text, end] or null. */
function readLiteral(src, i) {
  const q = src[i]
  if (q !== "'" && q !== '"' && q !== '`') return null
  let text = ''
  let j = i + 1
  while (j < src.length) {
    const c = src[j]
    if (c === '\\') {
      const n = src[j + 1]
      text += n === 'n' ? '\n' : n
      j += 2
      continue
    }
    if (c === q) return [text, j + 1]
    if (q === '`' && c === '$' && src[j + 1] === '{') {
      // skip to the matching }, across nested strings and templates
      let depth = 1
      j += 2
      while (j < src.length && depth > 0) {
        const d = src[j]
        if (d === "'" || d === '"' || d === '`') {
          const inner = readLiteral(src, j)
          j = inner ? inner[1] : j + 1
          continue
        }
        if (d === '{') depth++
        if (d === '}') depth--
        j++
      }
      if (!text.endsWith('…')) text += '…'
      continue
    }
    text += c
    j++
  }
  return null
}

/** Literals joined by + starting at i (after blanks). */
function readMessage(src, i) {
  const parts = []
  let j = i
  for (;;) {
    while (/\s/.test(src[j] ?? '')) j++
    const lit = readLiteral(src, j)
    if (!lit) break
    parts.push(lit[0])
    j = lit[1]
    while (/\s/.test(src[j] ?? '')) j++
    if (src[j] !== '+') break
    j++
  }
  return parts.length > 0 ? parts.join('') : null
}

/**
 * Every error message the code can produce: the literal first argument of `new XError(...)`
 * (the second for StepError, whose first is the step), of preflight's `fail(...)`, of `super(...)`
 * in Error classes, of `reason:` (host key refusals), of `const msg = ...` and of the value
 * returned by a function named `...Message(...)`. SettingsError messages are all
 * `Input '<name>': <problem>. <fix>` and have one entry.
 */
function errorMessages(srcDir) {
  const found = []
  for (const file of sourceFiles(srcDir)) {
    const src = readFileSync(file, 'utf8')
    const isErrorClass = /extends Error\b/.test(src)
    const re =
      /new (\w*Error)\(|\bfail\(|\bsuper\(|\breason:\s*|\b(?:const|let) (?:msg|message) = |\bfunction \w+Message\([^)]*\)[^{]*\{\s*return\s*\(?/g
    let m
    while ((m = re.exec(src))) {
      const kind = m[1] ?? m[0]
      if (kind === 'SettingsError' || kind === 'HostKeyError') continue
      if (m[0].startsWith('super') && !isErrorClass) continue
      let at = m.index + m[0].length
      if (kind === 'StepError') {
        while (/\s/.test(src[at])) at++
        const step = readLiteral(src, at)
        if (!step) continue
        at = step[1]
        while (/\s/.test(src[at])) at++
        if (src[at] !== ',') continue
        at++
      }
      const text = readMessage(src, at)
      if (text === null) continue
      const normal = oneLine(text)
      if (normal.replace(/[…\s:.,]/g, '').length < 6) continue
      const line = src.slice(0, m.index).split('\n').length
      found.push({ file: relative(root, file), line, text: normal })
    }
  }
  return found
}

function troubleshootingFragments(page) {
  const fragments = []
  for (const line of page.split('\n')) {
    if (!line.startsWith('> ')) continue
    for (const m of line.matchAll(/(`+)\s?(.+?)\s?\1/g)) fragments.push(oneLine(m[2]))
  }
  return fragments
}

function troubleshootingProblems(page) {
  const fragments = troubleshootingFragments(page)
  const messages = errorMessages(join(root, 'src'))
  const problems = []
  for (const msg of messages)
    if (!fragments.some(f => msg.text.includes(f)))
      problems.push(`no entry quotes this message (${msg.file}:${msg.line}): ${msg.text.slice(0, 160)}`)
  for (const f of fragments)
    if (!messages.some(msg => msg.text.includes(f)))
      problems.push(`quotes \`${f}\`, which no error message in src/ contains`)
  return problems
}

// ---------------------------------------------------------------------------------- links

/** The Markdown files whose relative links must resolve: README, CHANGELOG, SECURITY and docs/. */
function markdownFiles() {
  const out = ['README.md', 'CHANGELOG.md', 'SECURITY.md'].filter(f => existsSync(join(root, f)))
  const walk = dir => {
    if (!existsSync(join(root, dir))) return
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.md')) out.push(p)
    }
  }
  walk('docs')
  return out
}

/** GitHub's anchors for a Markdown file's headings (lower case, punctuation dropped, - for space). */
function anchors(markdown) {
  const seen = new Map()
  const out = new Set()
  for (const m of withoutCode(markdown).matchAll(/^#{1,6} +(.+?) *#* *$/gm)) {
    const base = m[1]
      .replace(/`/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}_\- ]/gu, '')
      .replace(/ /g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

/** Markdown without fenced blocks and code spans (a link there is text, not a link). */
const withoutCode = md => md.replace(/^```[\s\S]*?^```/gm, '').replace(/(`+)[^`\n]*?\1/g, '')

function linkProblems() {
  const problems = []
  for (const file of markdownFiles()) {
    const text = readFileSync(join(root, file), 'utf8')
    for (const m of withoutCode(text).matchAll(/!?\[[^\]]*\]\(<?([^)\s>]+)>?(?: "[^"]*")?\)/g)) {
      const target = m[1]
      if (/^[a-z][\w+.-]*:/i.test(target)) continue // https:, mailto:
      const [path, anchor] = target.split('#')
      const resolved = path === '' ? join(root, file) : resolve(dirname(join(root, file)), path)
      if (!existsSync(resolved)) {
        problems.push(`${file}: the link to ${target} names a file that does not exist`)
        continue
      }
      if (anchor && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(anchor))
        problems.push(`${file}: the link to ${target} names a heading that does not exist`)
    }
  }
  return problems
}

// --------------------------------------------------------------------------------------- main

async function main() {
  if (args.includes('--messages')) {
    for (const m of errorMessages(join(root, 'src'))) console.log(`${m.file}:${m.line}: ${m.text}`)
    return
  }
  const { inputs, outputs } = readAction()
  const page = readFileSync(INPUTS_DOC, 'utf8')
  let fresh = replaceBetween(page, 'inputs', await inputsTable(inputs))
  fresh = replaceBetween(fresh, 'outputs', await outputsTable(outputs))
  const module = await inputsModule(inputs, outputs)
  const current = existsSync(INPUTS_TS) ? readFileSync(INPUTS_TS, 'utf8') : ''
  const versionTs = await versionModule()
  const currentVersionTs = existsSync(VERSION_TS) ? readFileSync(VERSION_TS, 'utf8') : ''
  const trouble = troubleshootingProblems(readFileSync(TROUBLESHOOTING, 'utf8'))
  const links = linkProblems()

  if (check) {
    const problems = []
    if (fresh !== page)
      problems.push('docs/inputs.md: the inputs/outputs tables differ from action.yml (run `npm run docs`)')
    if (module !== current) problems.push('src/inputs.ts differs from action.yml (run `npm run docs`)')
    if (versionTs !== currentVersionTs)
      problems.push("src/version.ts differs from package.json's version (run `npm run docs`)")
    problems.push(...trouble.map(p => `docs/troubleshooting.md: ${p}`))
    problems.push(...links)
    for (const p of problems) console.error(`docs: ${p}`)
    if (problems.length > 0) process.exit(1)
    console.log(
      `docs: docs/inputs.md and src/inputs.ts match action.yml (${inputs.length} inputs, ${outputs.length} outputs); Troubleshooting covers every error message; links resolve`
    )
    return
  }
  if (fresh !== page) writeFileSync(INPUTS_DOC, fresh)
  if (module !== current) writeFileSync(INPUTS_TS, module)
  if (versionTs !== currentVersionTs) writeFileSync(VERSION_TS, versionTs)
  console.log(
    `docs: wrote ${inputs.length} inputs and ${outputs.length} outputs to docs/inputs.md and src/inputs.ts`
  )
  for (const p of trouble) console.error(`docs: warning: docs/troubleshooting.md: ${p}`)
  for (const p of links) console.error(`docs: warning: ${p}`)
}

await main()
