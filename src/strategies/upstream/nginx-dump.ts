/**
 * What `nginx -T` (the whole configuration, every included file after a `# configuration file
 * PATH:` line) tells the strategy: whether the managed file is part of it, and which access logs
 * use the log format the canary is measured with.
 */
import { tokenize } from './conf-syntax.js'
import { LOG_FORMAT, LOG_FORMAT_NAME } from './error-rate.js'

export interface DumpFacts {
  /** Every file the configuration reads. */
  files: string[]
  /** Paths of access logs written in the zerodown format. */
  accessLogs: string[]
  /** The zerodown log_format's text as configured (after nginx's unescaping), if any. */
  logFormat?: string
}

/** The format after nginx reads it: the quotes gone, \t a tab. */
export const LOG_FORMAT_VALUE = LOG_FORMAT.slice(1, -1).replaceAll('\\t', '\t')

export function parseDump(dump: string): DumpFacts {
  const files: string[] = []
  for (const m of dump.matchAll(/^# configuration file (.+):$/gm)) files.push(m[1]!)
  const facts: DumpFacts = { files, accessLogs: [] }
  let tokens: ReturnType<typeof tokenize>
  try {
    tokens = tokenize(dump)
  } catch {
    return facts
  }
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    if (t.kind !== 'word' || (i > 0 && tokens[i - 1]!.kind === 'word')) continue
    const args: string[] = []
    for (let j = i + 1; j < tokens.length && tokens[j]!.kind === 'word'; j++) args.push(tokens[j]!.value)
    if (t.value === 'access_log' && args[1] === LOG_FORMAT_NAME && !facts.accessLogs.includes(args[0]!))
      facts.accessLogs.push(args[0]!)
    if (t.value === 'log_format' && args[0] === LOG_FORMAT_NAME) {
      const rest = args.slice(1)
      if (rest[0]?.startsWith('escape=')) rest.shift()
      facts.logFormat = rest.join('')
    }
  }
  return facts
}

/** Why the canary cannot be measured with this configuration, or null when it can. */
export function logProblem(facts: DumpFacts): string | null {
  if (facts.logFormat === undefined)
    return `the load balancer's configuration has no log_format ${LOG_FORMAT_NAME}`
  if (facts.logFormat !== LOG_FORMAT_VALUE)
    return `its log_format ${LOG_FORMAT_NAME} is not the one the action reads (${JSON.stringify(facts.logFormat)})`
  if (facts.accessLogs.length === 0) return `no access_log uses the format ${LOG_FORMAT_NAME}`
  return null
}

/** The lines to add to the load balancer's http { } block, for messages and docs. */
export function logSetup(): string {
  return `log_format ${LOG_FORMAT_NAME} ${LOG_FORMAT}; access_log /var/log/nginx/zerodown.log ${LOG_FORMAT_NAME};`
}
