/** One bundle, three entries: the action's main step, its post step, and the command line. */
import { debug, isDebug } from '@actions/core'
import { cli } from './cli.js'
import { setTrace } from './host/trace.js'
import { run } from './main.js'
import { isPost, post } from './post.js'

/**
 * GitHub runs the bundle without arguments, with GITHUB_ACTIONS=true and the inputs as INPUT_*
 * (the post step also gets its saved STATE_*). A bare run anywhere else is a person trying the
 * command: it gets the help, not the action's `::save-state` lines and a missing-input error.
 */
function runsAsAction(env: NodeJS.ProcessEnv): boolean {
  return env.GITHUB_ACTIONS === 'true' || Object.keys(env).some(k => /^(INPUT|STATE)_/.test(k))
}

if (process.argv.length > 2) process.exitCode = await cli(process.argv.slice(2))
else if (!runsAsAction(process.env)) process.exitCode = await cli(['--help'])
else {
  // GitHub's debug logging (a re-run with debug logging sets RUNNER_DEBUG=1) shows every remote command.
  if (isDebug()) setTrace(debug)
  if (isPost()) await post()
  else await run()
}
