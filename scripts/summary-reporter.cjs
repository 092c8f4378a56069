// Prints one plain closing line ("N passed, N failed, N skipped") that any CI log reader
// understands, as the very last line of the run (after jest's own summary).
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests, numFailedTests, numPendingTests, numRuntimeErrorTestSuites } = results
    const failed = numFailedTests + numRuntimeErrorTestSuites
    const line = `\nTests: ${numPassedTests} passed, ${failed} failed, ${numPendingTests} skipped\n`
    process.on('exit', () => process.stderr.write(line))
  }
}
module.exports = SummaryReporter
