/**
 * The action's own sh scripts that the sudo helper carries (render.ts writes each one into the
 * helper), by the name the helper runs them under. The helper is generated from these very
 * strings, so the two cannot drift: a change here changes the helper's sha256, which the action
 * checks on every host (check.ts).
 */
import { READ_FILE } from '../host/ssh-host.js'
import { PROBE as TRUST_PROBE } from '../host/trust.js'
import { STORE_SCRIPTS } from '../releases/store.js'
import { RUNNING_EXE } from '../safety/lock-trust.js'
import { ACQUIRE, INSPECT, RELEASE, RENEW } from '../safety/lock-scripts.js'
import { DECIDE_SCRIPT, EXTEND_SCRIPT, INSPECT_SCRIPT, LAUNCH_SCRIPT } from '../safety/watchdog-scripts.js'
import { watchdogScript } from '../safety/watchdog-scripts.js'
import { TIMES } from '../supervisors/nginx/config-files.js'
import { PROBE as NGINX_PROBE } from '../supervisors/nginx/protocol.js'
import { nginxWatchdog } from '../supervisors/nginx/watchdog.js'

/** nginx's watchdog, the only one the helper starts (the launch's first argument). */
export const NGINX_WATCHDOG = watchdogScript(nginxWatchdog, false)

/** Helper sub-command → the script it runs (`sh -c SCRIPT sh ARGS...` in sudo: true mode). */
export const HELPER_SCRIPTS: Readonly<Record<string, string>> = {
  'lock-acquire': ACQUIRE,
  'lock-renew': RENEW,
  'lock-release': RELEASE,
  'lock-inspect': INSPECT,
  'watchdog-launch': LAUNCH_SCRIPT,
  'watchdog-decide': DECIDE_SCRIPT,
  'watchdog-extend': EXTEND_SCRIPT,
  'watchdog-inspect': INSPECT_SCRIPT,
  'nginx-probe': NGINX_PROBE,
  'running-exe': RUNNING_EXE,
  'trust-probe': TRUST_PROBE,
  'config-times': TIMES,
  'store-rebuild': STORE_SCRIPTS.rebuild,
  'store-write': STORE_SCRIPTS.write,
  'read-file': READ_FILE
}
