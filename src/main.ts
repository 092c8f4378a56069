/** The action's entry: settings → rollout → outputs + summary. Fails the job unless every host succeeded. */
import * as core from '@actions/core'
import { inspectBinary } from './binary.js'
import { SshHost } from './host/ssh-host.js'
import { setOutputs, writeSummary } from './report.js'
import { planFrom, runRollout, type RolloutResult } from './rollout.js'
import { readSettings, type HostTarget, type Settings } from './settings.js'
import type { Logger } from './upgrade/types.js'

export const coreLogger: Logger = {
  info: m => core.info(m),
  warn: m => core.warning(m),
  error: m => core.error(m),
  group: (title, fn) => core.group(title, fn)
}

/** Registers every secret with the runner so that no log line shows it. */
export function maskSecrets(settings: Settings): void {
  for (const secret of [
    settings.privateKey,
    settings.passphrase,
    settings.password,
    settings.jumpPrivateKey
  ]) {
    if (!secret) continue
    core.setSecret(secret)
    // The runner masks line by line: register each line of a multi-line key as well.
    for (const line of secret.split('\n'))
      if (line.trim().length >= 8 && !/^-----/.test(line.trim())) core.setSecret(line.trim())
  }
}

export function connector(settings: Settings, log: Logger): (target: HostTarget) => Promise<SshHost> {
  const credentials = {
    privateKey: settings.privateKey,
    passphrase: settings.passphrase,
    password: settings.password
  }
  return target =>
    SshHost.connect({
      target,
      credentials,
      hostKeys: {
        knownHosts: settings.knownHosts,
        fingerprints: settings.hostFingerprints,
        insecureSkip: settings.insecureSkipHostKeyCheck
      },
      sudo: settings.sudo,
      connectTimeoutMs: settings.connectTimeoutMs,
      jump: settings.jumpHost
        ? {
            target: settings.jumpHost,
            credentials: { ...credentials, privateKey: settings.jumpPrivateKey ?? settings.privateKey }
          }
        : undefined,
      log: m => log.info(m)
    })
}

export async function deploy(settings: Settings, log: Logger): Promise<RolloutResult> {
  const binary = await inspectBinary(settings.binary!)
  log.info(
    `new binary ${binary.localPath}: ${(binary.bytes / 1e6).toFixed(1)} MB, sha256 ${binary.sha256}, ${binary.arch ?? 'script'}`
  )
  return runRollout(settings, planFrom(settings, binary), { connect: connector(settings, log), log })
}

export async function run(): Promise<void> {
  try {
    const settings = readSettings(name => core.getInput(name))
    maskSecrets(settings)
    if (settings.insecureSkipHostKeyCheck)
      core.warning(
        'insecure-skip-host-key-check is true: host keys are NOT verified; anyone on the path can impersonate the hosts'
      )
    if (settings.mode !== 'deploy') throw new Error(`mode ${settings.mode} is not available yet`)
    const result = await deploy(settings, coreLogger)
    setOutputs(result)
    await writeSummary(result)
    if (result.result !== 'upgraded' && result.result !== 'unchanged') {
      const failed = result.hosts.filter(h => h.result !== 'upgraded' && h.result !== 'unchanged')
      core.setFailed(
        `${result.result}: ` +
          failed
            .map(
              h =>
                `${h.host} ${h.result}${h.failedStep ? ` at ${h.failedStep}` : ''}${h.error ? `: ${h.error}` : ''}`
            )
            .join('; ') +
          (result.result === 'rolled-back' ? '. The old version is serving.' : '')
      )
    }
  } catch (e) {
    core.setOutput('result', 'failed')
    core.setFailed((e as Error).message)
  }
}
