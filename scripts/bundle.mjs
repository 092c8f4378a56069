// Bundles src/index.ts into dist/index.js (one ESM file, as GitHub runs it under node24).
// With --check, builds to a temp dir and fails when dist/ differs (the check-dist job).
import { build } from 'esbuild'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const check = process.argv.includes('--check')
const outdir = check ? mkdtempSync(join(tmpdir(), 'zerodown-dist-')) : 'dist'

// ssh2's optional native parts (cpu-features, sshcrypto.node) cannot be bundled; ssh2 loads them
// in try/catch and falls back to pure JS, so each is replaced by a module that throws on load.
const noNative = {
  name: 'no-native',
  setup(b) {
    b.onResolve({ filter: /^cpu-features$|\.node$/ }, args => ({ path: args.path, namespace: 'no-native' }))
    b.onLoad({ filter: /.*/, namespace: 'no-native' }, args => ({
      contents: `throw new Error(${JSON.stringify('native module not bundled: ' + args.path)})`,
      loader: 'js'
    }))
  }
}

await build({
  entryPoints: ['src/index.ts'],
  outfile: join(outdir, 'index.js'),
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [noNative],
  // CommonJS dependencies (ssh2) call require() for node built-ins and read __dirname.
  banner: {
    js: [
      "import { createRequire as __zdCreateRequire } from 'node:module';",
      "import { fileURLToPath as __zdFileURLToPath } from 'node:url';",
      "import { dirname as __zdDirname } from 'node:path';",
      'const require = __zdCreateRequire(import.meta.url);',
      'const __filename = __zdFileURLToPath(import.meta.url);',
      'const __dirname = __zdDirname(__filename);'
    ].join('\n')
  }
})

if (check) {
  const fresh = readdirSync(outdir).sort()
  const committed = readdirSync('dist').sort()
  const differ =
    JSON.stringify(fresh) !== JSON.stringify(committed) ||
    fresh.some(f => !readFileSync(join(outdir, f)).equals(readFileSync(join('dist', f))))
  rmSync(outdir, { recursive: true, force: true })
  if (differ) {
    console.error('dist/ is not the bundle of src/: run `npm run bundle` and commit dist/.')
    process.exit(1)
  }
  console.log('dist/ matches a fresh bundle.')
}
