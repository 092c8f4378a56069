/** One bundle, three entries: the action's main step, its post step, and the command line. */
import { run } from './main.js'

await run()
