/** One bundle, three entries: the action's main step, its post step, and the command line. */
import { cli } from './cli.js'
import { run } from './main.js'
import { isPost, post } from './post.js'

// GitHub runs the bundle without arguments; from a terminal it gets a command or flags.
if (process.argv.length > 2) process.exitCode = await cli(process.argv.slice(2))
else if (isPost()) await post()
else await run()
