/**
 * tableflip's part of the watchdog (src/safety/watchdog.ts runs it at its deadline, after it put
 * the old binary back at the live path: the revert is a hand-over). Two cases, read from the host:
 *
 * - the hand-over never completed (the pid file still names the old process): stop the child
 *   that is not ready (TERM, then KILL); the old process never stopped serving;
 * - it completed (the pid file names the new process): wait for the old process to exit (it
 *   drains by itself; a second hand-over is refused until then; after 10 minutes it is killed),
 *   then send the upgrade signal to the new process, which starts the old binary as its child.
 *
 * Uses the generic script's helpers (nap, readpid, alive, log, sha_of) and $pf, $old, $sha.
 */
import type { UpgradeSignal } from '../../settings.js'
import type { WatchdogPart } from '../supervisor.js'

const SCRIPT = String.raw`
# Live children of $1, space-separated.
tf_kids() {
  alive "$1" || return 0
  o=; for c in /proc/$1/task/*/children; do k=; read -r k 2>/dev/null < "$c"; o="$o $k"; done
  r=; for k in $o; do alive "$k" && r="$r@{r:+ }$k"; done; echo "$r"
}
# The process runs the old binary (the kernel keeps the file it runs, even when replaced).
tf_runs_old() { alive "$1" && [ "$(sha_of "/proc/$1/exe")" = "$sha" ]; }

revert_processes() {
  cur=$(readpid "$pf")
  if alive "$old" && { [ "$cur" = "$old" ] || ! alive "$cur"; }; then
    for sig in TERM KILL; do
      k=$(tf_kids "$old"); [ -n "$k" ] || break
      # shellcheck disable=SC2086
      kill -s $sig $k 2>/dev/null && log "sent $sig to $k, the child of $old that never became ready"
      i=0; while [ $i -lt 25 ] && [ -n "$(tf_kids "$old")" ]; do nap; i=$((i+1)); done
    done
    return 0
  fi
  if ! alive "$cur"; then
    log "nothing to hand back to: the old process $old is gone and the pid file names '$cur', which is not running"
    return 0
  fi
  if tf_runs_old "$cur"; then log "$cur already runs the old binary"; return 0; fi
  if alive "$old"; then
    log "waiting for the old process $old to finish its requests and exit: a hand-over back needs it gone"
    i=0; while alive "$old" && [ $i -lt 3000 ]; do nap; i=$((i+1)); done
    if alive "$old"; then kill -s KILL "$old" 2>/dev/null && log "the old process $old still ran after 10 minutes: killed"; nap; fi
  fi
  kill -s @SIGNAL "$cur" 2>/dev/null && log "sent @SIGNAL to $cur: hand-over back to the old binary"
  i=0; while [ $i -lt 300 ]; do
    n=$(readpid "$pf")
    [ -n "$n" ] && [ "$n" != "$cur" ] && tf_runs_old "$n" && break
    nap; i=$((i+1))
  done
}

# 0 when a process running the old binary serves (named in the pid file) with no child pending.
processes_ok() {
  p=$(readpid "$pf")
  serving="$p serves the old binary"
  seen="pid file '$p' ($(tf_runs_old "$p" && echo 'runs the old binary' || echo 'does not run the old binary')), old process $old $(alive "$old" && echo alive || echo gone)"
  seen_short="pid file $p"
  tf_runs_old "$p" && [ -z "$(tf_kids "$p")" ]
}
`

/** The watchdog part for a server that starts its hand-over on `signal`. */
export function tableflipWatchdog(signal: UpgradeSignal): WatchdogPart {
  return { script: SCRIPT.replaceAll('@{', '${').replaceAll('@SIGNAL', signal) }
}
