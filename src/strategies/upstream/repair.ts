/** What to tell a user when the rollback of a backend failed: the state, and commands that can be pasted. */
import { commandLine } from '../../host/quote.js'
import { sidePaths } from './deps.js'
import { describeState } from './load-balancer.js'
import type { UpstreamParts } from './parts.js'

/** The host's state after a failed rollback, and the commands that repair it. */
export async function repairAdvice(p: UpstreamParts): Promise<string[]> {
  const r = p.state.running
  const now = p.lb.stateNow(p.state.address)
  const lines = [
    `# state: server ${p.state.address} is ${now ? describeState(now) : 'unknown'} in upstream ${p.lb.o.name} on ${p.lb.host.name}` +
      (r ? `; ${r.livePath} has ${p.state.swapped ? 'been swapped' : 'not been swapped'}` : '')
  ]
  if (r) {
    const { previous } = sidePaths(r.livePath)
    lines.push(`# on ${p.host.name}: put the previous binary back and restart it`)
    lines.push(
      `${commandLine(['test', '-e', previous])} && ${commandLine(['mv', '-f', previous, r.livePath])}`
    )
    lines.push(p.plan.restartCommand)
  }
  lines.push(
    `# on ${p.lb.host.name}, once the server answers its health check: remove 'down' from its line in ${p.lb.o.file}, then`
  )
  lines.push(
    `${commandLine([p.lb.master.exe, '-t', ...p.lb.master.configArgs])} && kill -HUP ${p.lb.master.pid}`
  )
  return lines
}
