// Loaded into the action's process by bench/runner-cost.mjs (NODE_OPTIONS=--import=<this file>):
// when the process exits, writes its own CPU time and peak memory to $ZERODOWN_RUSAGE_FILE, with
// the peaks of its JavaScript heap and of its buffers outside it, sampled every 50 ms (so the RSS
// can be told apart: live objects, connection buffers, or heap that V8 let grow).
import { writeFileSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

// A full collection at exit tells what is still referenced from what V8 merely had not collected.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')

const file = process.env.ZERODOWN_RUSAGE_FILE
if (file) {
  let heapPeak = 0
  let buffersPeak = 0
  const sample = () => {
    const m = process.memoryUsage()
    heapPeak = Math.max(heapPeak, m.heapUsed)
    buffersPeak = Math.max(buffersPeak, m.external + m.arrayBuffers)
  }
  setInterval(sample, 50).unref()
  process.on('exit', () => {
    sample()
    const u = process.resourceUsage()
    gc()
    const live = process.memoryUsage()
    // userCPUTime/systemCPUTime in microseconds, maxRSS in kilobytes (getrusage(2)).
    writeFileSync(
      file,
      JSON.stringify({
        userUs: u.userCPUTime,
        systemUs: u.systemCPUTime,
        maxRssKb: u.maxRSS,
        heapPeakKb: Math.round(heapPeak / 1024),
        buffersPeakKb: Math.round(buffersPeak / 1024),
        heapLiveKb: Math.round(live.heapUsed / 1024),
        buffersLiveKb: Math.round((live.external + live.arrayBuffers) / 1024)
      })
    )
  })
}
