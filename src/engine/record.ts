/** One report entry while its steps run: its record in the host's report and its log lines. */
import { formatDuration } from '../duration.js'
import type { HostReport, Logger, StepReport } from './types.js'

export class EntryRecord {
  readonly rec: StepReport
  private open = true
  private readonly t0 = Date.now()

  constructor(
    report: HostReport,
    private readonly host: string,
    private readonly log: Logger,
    readonly name: string
  ) {
    this.rec = {
      name,
      startedAt: new Date().toISOString(),
      endedAt: '',
      ms: 0,
      outcome: 'ok',
      observations: []
    }
    report.steps.push(this.rec)
  }

  /** A line in the record and the log; dropped once closed (a wait given up on by a cancel goes on unheard). */
  readonly note = (s: string): void => {
    if (!this.open) return
    this.rec.observations.push(s)
    this.log.info(`${this.host} [${this.name}] ${s}`)
  }

  failed(message: string): void {
    this.rec.outcome = 'failed'
    this.rec.observations.push(message)
  }

  /** Ends the record; its closing line comes after the group, readable with every group collapsed. */
  close(): void {
    this.open = false
    this.rec.ms = Date.now() - this.t0
    this.rec.endedAt = new Date().toISOString()
    this.log.info(
      `${this.rec.outcome === 'failed' ? '✗' : '✓'} ${this.host} [${this.name}] ${this.rec.outcome} in ${formatDuration(this.rec.ms)}`
    )
  }
}
