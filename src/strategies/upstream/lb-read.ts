/** Reading the load balancer as it is: its nginx master and the managed file. Nothing here changes it. */
import { check, type Host } from '../../host/host.js'
import { exePath, isAlive, isMasterTitle, parseMasterTitle, probe } from './deps.js'
import * as cmd from './lb-commands.js'
import { parseManagedFile, type ManagedFile } from './managed-file.js'
import { remoteText } from './remote-text.js'

/** The load balancer refused or failed a change; the file on it is what it was before. */
export class LoadBalancerError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'LoadBalancerError'
  }
}

export interface Master {
  pid: number
  exe: string
  configArgs: string[]
}

export async function readMaster(host: Host, pidFile: string): Promise<Master> {
  const snap = await probe(host, pidFile)
  if (snap.pid === null || !isAlive(snap, snap.pid))
    throw new LoadBalancerError(
      `${host.name}: no nginx master runs with the pid in ${pidFile}. Give the load balancer's pid file in pid-file`
    )
  const proc = snap.procs.get(snap.pid)!
  const parsed = parseMasterTitle(proc.title)
  if (!isMasterTitle(proc.title) || parsed === null)
    throw new LoadBalancerError(
      `${host.name}: process ${snap.pid} named in ${pidFile} is not an nginx master (${remoteText(proc.title, 120)})`
    )
  // The running master's own executable, never `nginx` from the PATH (another build, another config).
  const { path } = exePath(proc)
  if (!path.startsWith('/'))
    throw new LoadBalancerError(
      `${host.name}: cannot read the executable of nginx master ${snap.pid} (needs sudo: true?)`
    )
  return { pid: snap.pid, exe: path, configArgs: parsed.configArgs }
}

export async function readFile(
  host: Host,
  path: string,
  name: string
): Promise<{ file: ManagedFile; sha: string }> {
  const r = await host.run(cmd.readManagedFile(path), { sudo: host.sudo })
  if (r.code === 3)
    throw new LoadBalancerError(
      `${host.name}: upstream-file ${path} is a symbolic link; the action replaces the file with a rename and does not follow links. Give the real file`
    )
  if (r.code === 2) throw new LoadBalancerError(`${host.name}: upstream-file ${path} does not exist`)
  check(host, ['read', path], r)
  const nl = r.stdout.indexOf('\n')
  const sha = /^sha ([0-9a-f]{64})$/.exec(r.stdout.slice(0, nl))?.[1]
  if (!sha) throw new LoadBalancerError(`${host.name}: unexpected answer reading ${path}`)
  const text = r.stdout.slice(nl + 1)
  try {
    return { file: parseManagedFile(text, name), sha }
  } catch (e) {
    throw new LoadBalancerError(
      `${host.name}: upstream-file ${path}: ${remoteText((e as Error).message, 600)}`
    )
  }
}
