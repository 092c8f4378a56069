/**
 * Writes the sudo helper (host/zerodown-sudo, `npm run docs`): the policy of policy.ts around the
 * action's own scripts (scripts.ts), each kept verbatim in a single-quoted word and run with
 * `sh -c` exactly as `sudo: true` runs it. Its sha256 is what check.ts expects on a host.
 */
import { createHash } from 'node:crypto'
import { DISPATCH, HELPER_CONF, HELPER_PATH, PRELUDE } from './policy.js'
import { HELPER_SCRIPTS, NGINX_WATCHDOG } from './scripts.js'

const fn = (name: string) => `script_${name.replace(/-/g, '_')}`

/** The text as one sh single-quoted word: ' becomes '\'' (no fork to read it, unlike a here-document). */
export const shQuoted = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`

/** A function that sets S to the script: the helper runs it with `sh -c "$S"`. */
function scriptFunction(name: string, text: string): string {
  return `${fn(name)}() {\nS=${shQuoted(text.replace(/^\n+|\n+$/g, ''))}\n}\n`
}

const HEADER = `#!/bin/sh
# zerodown-sudo: the fixed set of privileged commands of zerodown-action (input sudo-helper).
# Generated from src/sudo-helper/ by \`npm run docs\`: do not edit. The action checks its sha256.
# Install as root:  install -o root -g root -m 0755 -D zerodown-sudo ${HELPER_PATH}
# Config (root-owned, one line per server): ${HELPER_CONF}
#   server BINARY PID-FILE [STORE]
# Usage: zerodown-sudo SUB-COMMAND ARGS...   (see docs/sudo.md; 'config' prints what it allows)
`

const MAIN = String.raw`
run() {
  n=$1; shift
  verify
  # The watchdog a launch starts is the helper's own (nginx's), never one given as an argument.
  if [ "$n" = watchdog_launch ]; then
    script_nginx_watchdog; w=$S; script_watchdog_launch
    exec sh -c "$S" sh "$w" "$@"
  fi
  script_$n
  exec sh -c "$S" sh "$@"
}

sub=@{1-}
[ $# -gt 0 ] && shift
load_config
if [ "$sub" = config ]; then
  verify
  for b in $BINS; do echo "binary $b"; done
  for p in $PIDS; do echo "pid-file $p"; done
  for s in $STORES; do echo "store $s"; done
  exit 0
fi
`.replaceAll('@{', '${')

/** The helper's full text. */
export function renderHelper(): string {
  const scripts = Object.entries({ ...HELPER_SCRIPTS, 'nginx-watchdog': NGINX_WATCHDOG })
    .map(([name, text]) => scriptFunction(name, text))
    .join('\n')
  return `${HEADER}${PRELUDE}\n${scripts}${MAIN}${DISPATCH}`
}

/** sha256 of the helper this build of the action speaks to. */
export function helperSha256(): string {
  return createHash('sha256').update(renderHelper()).digest('hex')
}
