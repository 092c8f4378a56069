/**
 * nginx's part of the watchdog (src/safety/watchdog.ts runs it at its deadline): bring the old
 * master back (HUP when WINCH took its workers away), stop the new master (QUIT, TERM, KILL), wait
 * until the old master takes its pid file back. Uses the generic script's helpers and $pf, $old.
 */
import type { WatchdogPart } from '../supervisor.js'

const SCRIPT = String.raw`
# Children of $1, one "<pid> <kind>" per line; kind: worker (accepting), draining, master (anything else).
kids() {
  want=$1
  alive "$want" || return 0
  for f in /proc/[0-9]*/stat; do
    s=; { read -r s < "$f"; } 2>/dev/null || continue
    c=@{f#/proc/}; c=@{c%/stat}
    s=@{s##*) }
    set -- $s
    [ "$2" = "$want" ] || continue
    case $1 in Z*|X*) continue;; esac
    t=$(tr '\0' ' ' < "/proc/$c/cmdline" 2>/dev/null)
    case $t in
      'nginx: worker process is shutting down'*) echo "$c draining";;
      'nginx: worker process'*|'nginx: cache manager'*|'nginx: cache loader'*) echo "$c worker";;
      *) echo "$c master";;
    esac
  done
}
of_kind() { kids "$1" | { o=; while read -r c k; do [ "$k" = "$2" ] && o="$o@{o:+ }$c"; done; echo "$o"; }; }

revert_processes() {
  if ! alive "$old"; then
    log "the old master $old is gone: the upgrade went through (or the server was restarted); nothing to roll back"
    finish nothing
  fi
  # 1. The old master serves again: HUP brings its workers back when WINCH took them away.
  if [ -z "$(of_kind "$old" worker)" ]; then
    if alive "$old" && kill -s HUP "$old" 2>/dev/null; then log "sent HUP to the old master $old: its workers return"; fi
    i=0; while [ $i -lt 50 ] && [ -z "$(of_kind "$old" worker)" ]; do nap; i=$((i+1)); done
    nap; nap
  fi
  # 2. Stop the new master (a child of the old one that is not a worker): QUIT, then TERM, then KILL.
  for sig in QUIT TERM KILL; do
    news=$(of_kind "$old" master)
    [ -n "$news" ] || break
    # shellcheck disable=SC2086
    kill -s $sig $news 2>/dev/null && log "sent $sig to the new master $news"
    case $sig in QUIT) n=50;; *) n=25;; esac
    i=0; while [ $i -lt $n ] && [ -n "$(of_kind "$old" master)" ]; do nap; i=$((i+1)); done
  done
  # 3. When the new master exits the old one takes its pid file back (.oldbin goes away).
  i=0; while [ $i -lt 50 ]; do
    [ "$(readpid "$pf")" = "$old" ] && [ ! -e "$pf.oldbin" ] && break
    nap; i=$((i+1))
  done
}

# 0 when the old master serves alone again; sets serving, seen and seen_short for the log.
processes_ok() {
  w=$(of_kind "$old" worker); n=$(of_kind "$old" master); p=$(readpid "$pf")
  serving="the old master $old serves with workers $w"
  seen="pid file '$p', .oldbin $([ -e "$pf.oldbin" ] && echo present || echo none), old workers '$w', new master '$n'"
  seen_short="pid file $p, old workers $w, new master $n"
  [ -n "$w" ] && [ -z "$n" ] && [ "$p" = "$old" ] && [ ! -e "$pf.oldbin" ]
}
`.replaceAll('@{', '${')

export const nginxWatchdog: WatchdogPart = { script: SCRIPT }
