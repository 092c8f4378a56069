// Sums a .cpuprofile (node --cpu-prof) by where the busy time was spent: self time per function and per
// module of the bundle (esbuild's `// node_modules/x/y.js` and `// src/x.ts` markers in
// dist/index.js name the module of each line), the top N of each.
//
//   node bench/cpu-profile.mjs FILE.cpuprofile [--bundle dist/index.js] [--top 15]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { bundle: { type: 'string', default: 'dist/index.js' }, top: { type: 'string', default: '15' } }
})
const TOP = Number(args.top)
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'))

// Line (0-based, as in the profile) → module, from the bundle's markers.
const marks = []
readFileSync(args.bundle, 'utf8')
  .split('\n')
  .forEach((line, i) => {
    const m = /^\/\/ ((?:node_modules|src|no-native)\S*)$/.exec(line)
    if (m) marks.push([i, m[1].replace(/^node_modules\/((?:@[^/]+\/)?[^/]+).*/, '$1')])
  })
const moduleAt = line => {
  let lo = 0
  let hi = marks.length - 1
  let found = '(bundle preamble)'
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (marks[mid][0] <= line) {
      found = marks[mid][1]
      lo = mid + 1
    } else hi = mid - 1
  }
  return found
}

// Self time per node: the sum of the sample intervals attributed to it.
const self = new Map()
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
// The profile samples the main thread by wall time: (idle) is the event loop waiting, left out
// of the total so that the shares are of the time the thread was busy.
const idleIds = new Set(profile.nodes.filter(n => n.callFrame.functionName === '(idle)').map(n => n.id))
for (const id of idleIds) self.delete(id)
const total = [...self.values()].reduce((a, b) => a + b, 0)
const byFunction = new Map()
const byModule = new Map()
for (const node of profile.nodes) {
  const us = self.get(node.id) ?? 0
  if (!us) continue
  const { functionName, url, lineNumber } = node.callFrame
  const inBundle = url.endsWith('/index.js') && url.includes('dist')
  const module = inBundle ? moduleAt(lineNumber) : url ? url.replace(/^.*\//, '') : functionName
  const fn = `${functionName || '(anonymous)'} ${module}${inBundle || url ? `:${lineNumber + 1}` : ''}`
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + us)
  byModule.set(module, (byModule.get(module) ?? 0) + us)
}
const show = (title, map) => {
  console.log(`\n${title} (of ${(total / 1000).toFixed(0)} ms busy on the main thread):\n`)
  console.log('| self ms | % | where |\n| ---: | ---: | --- |')
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, TOP))
    console.log(`| ${(us / 1000).toFixed(0)} | ${((100 * us) / total).toFixed(1)} | ${k} |`)
}
show('self time by function', byFunction)
show('self time by module', byModule)
