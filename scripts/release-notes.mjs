// Prints the release notes of a tag from CHANGELOG.md, after checking that the tag can be released:
//
//   node scripts/release-notes.mjs v1.2.3 [--root DIR]
//
// The tag is vX.Y.Z, package.json has version X.Y.Z (what `--version` prints), and CHANGELOG.md has
// a section `## [X.Y.Z] - YYYY-MM-DD` (dated: `Unreleased` is refused) with something in it.
// The release workflow publishes what this prints; any refusal fails the release before it exists.
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

const args = process.argv.slice(2)
const rootAt = args.indexOf('--root')
const root = resolve(rootAt >= 0 ? args[rootAt + 1] : new URL('..', import.meta.url).pathname)
const tag = args.find((a, i) => !a.startsWith('--') && !(rootAt >= 0 && i === rootAt + 1))

function refuse(problem) {
  console.error(`release-notes: ${problem}`)
  process.exit(1)
}

const m = /^v(\d+\.\d+\.\d+)$/.exec(tag ?? '')
if (!m) refuse(`the tag must look like v1.2.3, got ${JSON.stringify(tag ?? '')}`)
const version = m[1]

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
if (pkg.version !== version)
  refuse(
    `package.json says version ${pkg.version}, the tag ${tag}: set "version": "${version}" and tag again`
  )

const changelog = readFileSync(join(root, 'CHANGELOG.md'), 'utf8')
const escaped = version.replace(/\./g, '\\.')
const heading = new RegExp(`^## \\[${escaped}\\](.*)$`, 'm').exec(changelog)
if (!heading) refuse(`CHANGELOG.md has no section "## [${version}] - YYYY-MM-DD"`)
if (!/^ - \d{4}-\d{2}-\d{2}\s*$/.test(heading[1]))
  refuse(
    `CHANGELOG.md's section for ${version} is not dated ("${heading[0].trim()}"): write the release date`
  )
const rest = changelog.slice(heading.index + heading[0].length)
const next = rest.search(/^## /m)
const notes = (next < 0 ? rest : rest.slice(0, next)).replace(/^\[[^\]]+\]: .*$/gm, '').trim()
if (notes === '') refuse(`CHANGELOG.md's section for ${version} is empty`)
process.stdout.write(notes + '\n')
