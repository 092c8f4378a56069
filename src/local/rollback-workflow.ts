/**
 * The repository's own rollback workflow, for the job summary's link: the first file of
 * .github/workflows in the checkout that runs zerodown-action with `mode: rollback`. Read on the
 * runner only; nothing found (no checkout, no such workflow) means no link.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

export function findRollbackWorkflow(workspace: string): string | undefined {
  const dir = join(workspace, '.github/workflows')
  let files: string[]
  try {
    files = readdirSync(dir)
      .filter(f => /\.ya?ml$/.test(f))
      .sort()
  } catch {
    return undefined
  }
  return files.find(f => {
    try {
      const text = readFileSync(join(dir, f), 'utf8')
      return /zerodown-action@/.test(text) && /^\s*mode:\s*['"]?rollback['"]?\s*(#.*)?$/m.test(text)
    } catch {
      return false
    }
  })
}
