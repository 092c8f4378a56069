// Loaded into the action's process by bench/runner-cost.mjs (NODE_OPTIONS=--import=<this file>):
// when the process exits, writes its own CPU time and peak memory to $ZERODOWN_RUSAGE_FILE.
import { writeFileSync } from 'node:fs'

const file = process.env.ZERODOWN_RUSAGE_FILE
if (file)
  process.on('exit', () => {
    const u = process.resourceUsage()
    // userCPUTime/systemCPUTime in microseconds, maxRSS in kilobytes (getrusage(2)).
    writeFileSync(
      file,
      JSON.stringify({ userUs: u.userCPUTime, systemUs: u.systemCPUTime, maxRssKb: u.maxRSS })
    )
  })
