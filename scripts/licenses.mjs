// The third-party notices shipped in dist/licenses.txt. MIT, ISC and BSD licenses ask that their
// notice travel with every copy, and the bundle is a copy: each package that esbuild put into
// dist/index.js is listed (from the build's metafile, so the list is exactly what was bundled),
// with its version, its declared license and the text of its own license file.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/** The package folders (node_modules/<name> or node_modules/@scope/<name>) of the bundled files. */
function bundledPackages(metafile) {
  const dirs = new Set()
  for (const input of Object.keys(metafile.inputs)) {
    const m = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//)
    if (m) dirs.add(m[1])
  }
  return [...dirs]
}

function licenseFile(dir) {
  const name = readdirSync(dir)
    .filter(f => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f))
    .sort()[0]
  return name ? readFileSync(join(dir, name), 'utf8').trim() : undefined
}

/** Text of dist/licenses.txt for an esbuild metafile and its external legal comments. */
export function licensesText(metafile, legalComments) {
  const packages = bundledPackages(metafile)
    .filter(dir => existsSync(join(dir, 'package.json')))
    .map(dir => {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      const repo = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url
      return { name: pkg.name, version: pkg.version, license: pkg.license, repo, text: licenseFile(dir) }
    })
    .sort((a, b) => a.name.localeCompare(b.name))
  const rule = '-'.repeat(78)
  const out = [
    'zerodown-action bundles the following third-party packages in dist/index.js.',
    'Their license notices follow, as each package ships them.',
    ''
  ]
  for (const p of packages) {
    out.push(
      rule,
      `${p.name}@${p.version}`,
      `License: ${p.license ?? '(not declared in package.json; see its license file)'}`
    )
    if (p.repo) out.push(`Repository: ${p.repo}`)
    out.push('')
    out.push(
      p.text ??
        `The package declares the ${p.license} license in its package.json but ships no license file ` +
          'or copyright line.'
    )
    out.push('')
  }
  if (legalComments.trim()) out.push(rule, legalComments.trim(), '')
  return out.join('\n')
}
