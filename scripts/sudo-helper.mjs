// The sudo helper and its sudoers line stay true.
//
//   node scripts/sudo-helper.mjs           writes host/zerodown-sudo from src/sudo-helper/render.ts
//                                          (the policy around the action's own scripts)
//   node scripts/sudo-helper.mjs --check   exits 1 when host/zerodown-sudo differs from it, or
//                                          when README.md or docs/sudo.md lacks a rule line of
//                                          host/sudoers (the lines the sandbox test installs)
//
// The action checks the installed helper's sha256 against the same rendering (check.ts), so a
// helper that is not this one is refused on the host before anything changes.
import { build } from 'esbuild'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const root = resolve(new URL('..', import.meta.url).pathname)
const out = join(root, 'host/zerodown-sudo')
const tmp = mkdtempSync(join(root, 'node_modules', '.zerodown-helper-'))
let text
try {
  const file = join(tmp, 'render.mjs')
  await build({
    entryPoints: [join(root, 'src/sudo-helper/render.ts')],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'error'
  })
  text = (await import(pathToFileURL(file).href)).renderHelper()
} finally {
  rmSync(tmp, { recursive: true, force: true })
}
// Each rule of host/sudoers, as README.md and docs/sudo.md must quote it.
const rules = readFileSync(join(root, 'host/sudoers'), 'utf8')
  .split('\n')
  .filter(l => l.trim() !== '' && !l.startsWith('#'))
let stale = false
for (const doc of ['README.md', 'docs/sudo.md']) {
  const text = readFileSync(join(root, doc), 'utf8')
  for (const rule of rules)
    if (!text.split('\n').some(l => l.trim() === rule)) {
      console.error(`${doc} does not quote the sudoers line of host/sudoers: ${rule}`)
      stale = true
    }
}
if (process.argv.includes('--check')) {
  if (stale) process.exit(1)
  let now = ''
  try {
    now = readFileSync(out, 'utf8')
  } catch {
    /* missing */
  }
  if (now !== text) {
    console.error('host/zerodown-sudo is not up to date with src/sudo-helper/: run npm run docs')
    process.exit(1)
  }
} else {
  writeFileSync(out, text)
  chmodSync(out, 0o755)
}
