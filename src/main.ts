/** The action's entry: settings → run → outputs + summary. Fails the job unless every host succeeded. */
import { neutralize } from './remote-text.js'
import * as core from '@actions/core'
import { cancelOnSignals, perform, performReadOnly } from './app.js'
import { failureMessage, succeeded } from './fleet/tally.js'
import { modeFailureMessage } from './modes/index.js'
import { coreLogger, maskSecrets, reportMode, setOutputs, writeSummary } from './report/github.js'
import { readSettings } from './settings.js'
import { isReadOnlyMode } from './settings/modes.js'
import { stateSaver } from './state.js'

export async function run(): Promise<void> {
  const state = stateSaver({ save: core.saveState, get: core.getState }, m => core.warning(m))
  // The post step (post.ts) runs the same bundle: this tells it apart from the main step.
  state.markMain()
  const controller = new AbortController()
  let mode: string | undefined
  const uninstall = cancelOnSignals(controller, coreLogger, () => mode)
  try {
    const settings = readSettings(name => core.getInput(name), process.env)
    mode = settings.mode
    maskSecrets(settings)
    if (isReadOnlyMode(settings.mode)) {
      // plan, status: nothing changes on a host, so the post step has nothing to finish.
      const look = await performReadOnly({ ...settings, mode: settings.mode }, coreLogger, {
        signal: controller.signal
      })
      await reportMode(look)
      if (!look.ok) core.setFailed(neutralize(modeFailureMessage(look)))
    } else {
      const result = await perform({ ...settings, mode: settings.mode }, coreLogger, {
        signal: controller.signal,
        persist: state.persist
      })
      setOutputs(result)
      await writeSummary(result, settings.rollbackWorkflow)
      // Names the failing host(s) and how many hosts were upgraded, rolled back, failed, untouched.
      if (!succeeded(result, settings)) core.setFailed(neutralize(failureMessage(result)))
    }
  } catch (e) {
    core.setOutput('result', 'failed')
    core.setFailed(neutralize((e as Error).message))
  } finally {
    uninstall()
  }
  // Cancelled: the hosts are settled and reported; do not wait for loops that were given up on.
  if (controller.signal.aborted) process.exit(process.exitCode ?? 0)
}
