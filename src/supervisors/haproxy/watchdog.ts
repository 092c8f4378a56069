/**
 * HAProxy's part of the watchdog (src/safety/watchdog.ts runs it at its deadline, after it put the
 * old binary back: revert is `handoff`): USR2 to the master, then the wait for workers running the
 * live file again. Uses the generic script's helpers (nap, alive, log) and $old, $live. A master
 * that is gone cannot reload: the watchdog says so, and the old binary is at least back on disk.
 */
import type { WatchdogPart } from '../supervisor.js'

const SCRIPT = String.raw`
hx_kids() { alive "$1" || return 0; for c in /proc/$1/task/*/children; do k=; read -r k 2>/dev/null < "$c"; echo $k; done; }
hx_runs_live() { [ "$(stat -L -c %d:%i "/proc/$1/exe" 2>/dev/null)" = "$(stat -L -c %d:%i -- "$live" 2>/dev/null)" ]; }
hx_reloading() { tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | grep -qx -- '-sf'; }

revert_processes() {
  hx_before=
  if ! alive "$old"; then
    log "the HAProxy master $old is gone: nothing can reload; start HAProxy again (the old binary is at $live)"
    return 0
  fi
  if processes_ok && [ -z "$o" ] && hx_runs_live "$old"; then log "the master $old and its workers run the old binary already"; return 0; fi
  hx_before=" $(hx_kids "$old" | tr '\n' ' ') "
  if alive "$old" && kill -s USR2 "$old" 2>/dev/null; then log "sent USR2 to the master $old: it reloads the old binary"; fi
  i=0; while [ $i -lt 150 ]; do processes_ok && break; nap; i=$((i+1)); done
}

# 0 when the master has left its reload and serves with workers (started by the watchdog's reload,
# if it sent one) running the live (old) file; sets serving, seen, seen_short, and o (other workers).
processes_ok() {
  if ! alive "$old"; then serving=; seen="master $old gone"; seen_short=$seen; return 1; fi
  n=; o=
  for c in $(hx_kids "$old"); do
    alive "$c" || continue
    case $hx_before in *" $c "*) o="$o $c"; continue;; esac
    if hx_runs_live "$c"; then n="$n $c"; else o="$o $c"; fi
  done
  r=; hx_reloading "$old" && r=' (reloading)'
  serving="the master $old serves the old binary with workers$n"
  seen="master $old$r, workers on $live:@{n:- none}, other workers:@{o:- none}"
  seen_short=$seen
  [ -n "$n" ] && [ -z "$r" ]
}
`.replaceAll('@{', '${')

export const haproxyWatchdog: WatchdogPart = { script: SCRIPT }
