// Bundles src/index.ts into dist/index.js (one ESM file, as GitHub runs it under node24), and
// writes dist/licenses.txt: the license of every third-party package in the bundle (see
// scripts/licenses.mjs). With --check, builds to a temp dir and fails when dist/ differs (the
// check-dist job), so the notices cannot fall out of step with what is bundled.
import { build } from 'esbuild'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noNative, noUndici } from './bundle-plugins.mjs'
import { licensesText } from './licenses.mjs'
import { ssh2DirectPublickey } from './ssh2-direct-publickey.mjs'
import { ssh2KeyObjects } from './ssh2-key-objects.mjs'

const check = process.argv.includes('--check')
// --dist DIR: the committed bundle to compare with (tests point it at an altered copy).
const distAt = process.argv.indexOf('--dist')
const dist = distAt > 0 ? process.argv[distAt + 1] : 'dist'
const outdir = check ? mkdtempSync(join(tmpdir(), 'zerodown-dist-')) : 'dist'

const result = await build({
  entryPoints: ['src/index.ts'],
  outfile: join(outdir, 'index.js'),
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  // The bundled code's own legal comments (/*! ... */, @license) go to licenses.txt, not index.js.
  legalComments: 'external',
  metafile: true,
  write: false,
  logLevel: 'warning',
  plugins: [noNative, noUndici, ssh2KeyObjects, ssh2DirectPublickey],
  // CommonJS dependencies (ssh2) call require() for node built-ins and read __dirname.
  // The shebang lets npm install dist/index.js as the `zerodown-action` command (package.json bin).
  banner: {
    js: [
      '#!/usr/bin/env node',
      "import { createRequire as __zdCreateRequire } from 'node:module';",
      "import { fileURLToPath as __zdFileURLToPath } from 'node:url';",
      "import { dirname as __zdDirname } from 'node:path';",
      'const require = __zdCreateRequire(import.meta.url);',
      'const __filename = __zdFileURLToPath(import.meta.url);',
      'const __dirname = __zdDirname(__filename);'
    ].join('\n')
  }
})

mkdirSync(outdir, { recursive: true })
const legal = result.outputFiles.find(f => f.path.endsWith('.LEGAL.txt'))?.text ?? ''
for (const f of result.outputFiles) if (!f.path.endsWith('.LEGAL.txt')) writeFileSync(f.path, f.contents)
writeFileSync(join(outdir, 'licenses.txt'), licensesText(result.metafile, legal))

if (check) {
  const fresh = readdirSync(outdir).sort()
  const committed = readdirSync(dist).sort()
  const differ =
    JSON.stringify(fresh) !== JSON.stringify(committed) ||
    fresh.some(f => !readFileSync(join(outdir, f)).equals(readFileSync(join(dist, f))))
  rmSync(outdir, { recursive: true, force: true })
  if (differ) {
    console.error(
      'dist/ is not the bundle of src/ (index.js, licenses.txt): run `npm run bundle` and commit dist/.'
    )
    process.exit(1)
  }
  console.log('dist/ matches a fresh bundle.')
}
