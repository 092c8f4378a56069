// The README's picture of the job summary, drawn from real summaries the way GitHub shows them:
//
//   ZERODOWN_DEMO_SUMMARIES=docs/images npm run demo    # real summaries of a real upgrade and rollback
//   node scripts/summary-picture.mjs [--from DIR]       # DIR (default docs/images)/summary-*.md -> .png
//
// Each summary-<name>.md becomes summary-<name>.png beside it. The Markdown goes to HTML with
// marked (GitHub-flavoured, raw HTML such as <details> kept, as GitHub's summary does), each
// ```mermaid block is drawn by the mermaid package in Debian's headless chromium, and chromium
// takes the screenshot. Two passes: the first lets Mermaid draw and dumps the page with its SVGs
// and height; the second screenshots that static page at its full height. A diagram Mermaid
// cannot draw fails the script (GitHub would show an error box there).
// Needs `chromium` and fonts (apt-get install chromium fonts-liberation fonts-noto-color-emoji);
// the tests do not: they parse the summaries' Mermaid in Node (__tests__/summary-mermaid.test.ts).
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Marked } from 'marked'

const root = resolve(new URL('..', import.meta.url).pathname)
const args = process.argv.slice(2)
const fromAt = args.indexOf('--from')
const from = resolve(fromAt >= 0 ? args[fromAt + 1] : join(root, 'docs/images'))
const WIDTH = 1012 // GitHub's job summary pane on a wide screen

function chromiumPath() {
  for (const c of ['chromium', 'chromium-browser']) {
    const r = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' })
    if (r.status === 0) return r.stdout.trim()
  }
  console.error(
    'summary-picture: chromium is missing: apt-get install -y chromium fonts-liberation fonts-noto-color-emoji'
  )
  process.exit(1)
}
const CHROMIUM = chromiumPath()

/** Runs headless chromium with a new empty profile, and nothing that reaches the network. */
function chromium(extra, url) {
  const profile = mkdtempSync(join(tmpdir(), 'zerodown-chromium-'))
  try {
    return execFileSync(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--hide-scrollbars',
        '--force-device-scale-factor=1',
        `--user-data-dir=${profile}`,
        ...extra,
        url
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }
    )
  } finally {
    rmSync(profile, { recursive: true, force: true })
  }
}

const escapeHtml = s => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

const marked = new Marked({ gfm: true }).use({
  renderer: {
    code({ text, lang }) {
      return lang === 'mermaid' ? `<pre class="mermaid">${escapeHtml(text)}</pre>\n` : false
    }
  }
})

// A GitHub-like look, written for this page: system fonts, bordered tables, grey code.
const CSS = `
body { margin: 0; background: #f6f8fa; font: 14px/1.5 -apple-system, "Segoe UI", "Liberation Sans", Helvetica, Arial, sans-serif, "Noto Color Emoji"; color: #1f2328; }
.card { margin: 16px; background: #fff; border: 1px solid #d1d9e0; border-radius: 6px; }
.card > header { padding: 12px 16px; border-bottom: 1px solid #d1d9e0; font-weight: 600; }
.body { padding: 16px 24px; }
h1, h2, h3 { margin: 20px 0 12px; line-height: 1.25; font-weight: 600; }
h1 { font-size: 2em; padding-bottom: .3em; border-bottom: 1px solid #d1d9e0; }
h2 { font-size: 1.5em; padding-bottom: .3em; border-bottom: 1px solid #d1d9e0; }
h3 { font-size: 1.25em; }
table { border-collapse: collapse; margin: 0 0 16px; display: block; overflow: auto; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
th { font-weight: 600; }
tr:nth-child(2n) { background: #f6f8fa; }
code { font: 85% ui-monospace, "Liberation Mono", monospace; background: #eff1f3; padding: .2em .4em; border-radius: 6px; }
pre:not(.mermaid) { background: #f6f8fa; padding: 16px; border-radius: 6px; overflow: auto; }
pre code { background: none; padding: 0; }
pre.mermaid { background: none; text-align: center; }
details { margin: 0 0 16px; } summary { cursor: pointer; }
p, ul, ol { margin: 0 0 16px; }
`

function page(title, markdown, withMermaid) {
  const mermaidJs = join(root, 'node_modules/mermaid/dist/mermaid.min.js')
  const script = withMermaid
    ? `<script src="file://${mermaidJs}"></script>
<script>
  mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: 'default' })
  mermaid.run({ querySelector: 'pre.mermaid' }).then(
    () => {
      const errors = document.querySelectorAll('[id^="d"] .error-text, .error-icon').length
      document.body.dataset.errors = String(errors)
      document.body.dataset.height = String(Math.ceil(document.documentElement.scrollHeight))
    },
    e => { document.body.dataset.failed = String(e && e.message ? e.message : e) }
  )
</script>`
    : ''
  return `<!doctype html><html><head><meta charset="utf-8"><style>${CSS}</style></head><body>
<div class="card"><header>${escapeHtml(title)}</header><div class="body">
${markdown}
</div></div>
${script}
</body></html>`
}

function render(name) {
  const md = readFileSync(join(from, `${name}.md`), 'utf8')
  const work = mkdtempSync(join(tmpdir(), 'zerodown-picture-'))
  try {
    const html = marked.parse(md)
    const title = 'deploy summary'
    writeFileSync(join(work, 'draw.html'), page(title, html, true))
    const dom = chromium(
      ['--dump-dom', '--virtual-time-budget=20000', `--window-size=${WIDTH},800`],
      `file://${join(work, 'draw.html')}`
    )
    const failed = /data-failed="([^"]*)"/.exec(dom)
    if (failed) throw new Error(`${name}: Mermaid could not draw a diagram: ${failed[1]}`)
    const errors = /data-errors="(\d+)"/.exec(dom)
    const height = /data-height="(\d+)"/.exec(dom)
    if (!height || !errors) throw new Error(`${name}: Mermaid did not finish drawing within the time budget`)
    if (errors[1] !== '0') throw new Error(`${name}: Mermaid drew ${errors[1]} error box(es)`)
    // The drawn page without its scripts: the screenshot shows exactly what was dumped.
    const drawn = dom.replace(/<script\b[\s\S]*?<\/script>/g, '')
    writeFileSync(join(work, 'drawn.html'), drawn)
    const png = join(from, `${name}.png`)
    chromium(
      [`--screenshot=${png}`, `--window-size=${WIDTH},${Number(height[1]) + 16}`],
      `file://${join(work, 'drawn.html')}`
    )
    console.log(`summary-picture: ${png} (${WIDTH}x${Number(height[1]) + 16})`)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

const names = readdirSync(from)
  .filter(f => /^summary-.+\.md$/.test(f))
  .map(f => f.replace(/\.md$/, ''))
if (names.length === 0) {
  console.error(
    `summary-picture: no summary-*.md in ${from}. Make real ones first: ZERODOWN_DEMO_SUMMARIES=${from} npm run demo`
  )
  process.exit(1)
}
for (const name of names) render(name)
