#!/bin/sh
# The same hot-upgrade dance as the action, done by hand with OpenSSH, for bench/upgrade.mjs to
# compare wall times. The remote part (one sh) runs the config test, swaps the file (the old one
# kept as a hard link), USR2, polls the pid files with sleep until the new master has workers,
# WINCH, health checks (bash's /dev/tcp, no curl: N consecutive 200s, one every interval), polls
# until the old master has no worker left (its children minus the new master), QUIT, and waits
# until the old master is gone. No rollback, no lock, no release store.
#
#   upgrade-ssh.sh MODE ADDR SSH_PORT USER KEY KNOWN_HOSTS NEW_BINARY CHECKS INTERVAL_MS POLL_MS HTTP_PORT
#
# MODE scp:    scp the binary, then one ssh session for the dance (two SSH connections, the usual way)
# MODE stream: one ssh session: the binary streamed on its stdin, the dance passed in the command
set -eu
mode=$1 addr=$2 port=$3 user=$4 key=$5 known=$6 bin=$7 checks=$8 interval_ms=$9 poll_ms=${10} http_port=${11}
opts="-i $key -o UserKnownHostsFile=$known -o BatchMode=yes -o StrictHostKeyChecking=yes"
ms() { awk "BEGIN { printf \"%.3f\", $1 / 1000 }"; }
# "mark NAME MS": when each phase ends (epoch ms), for the benchmark's breakdown
mark() { echo "mark $1 $(date +%s%3N)"; }
mark start

dance='set -eu
addr=$1 http_port=$2 checks=$3 interval=$4 poll=$5
mark() { echo "mark $1 $(date +%s%3N)"; }
mark ssh
live=/srv/app/sbin/nginx new=/srv/app/sbin/.nginx.bench-new pf=/run/nginx.pid
old=$(cat $pf)
chmod 0755 "$new"
"$new" -t -q -p /srv/app -c /srv/app/conf/nginx.conf -e /srv/app/logs/error.log
ln -f $live /srv/app/sbin/.nginx.bench-prev
mv -f "$new" $live
mark verify+swap
kill -USR2 "$old"
n=0
while :; do
  cur=$(cat $pf 2>/dev/null || true)
  if [ -f $pf.oldbin ] && [ -n "$cur" ] && [ "$cur" != "$old" ] && pgrep -P "$cur" -f "nginx: worker" >/dev/null; then break; fi
  n=$((n + 1)); [ $n -lt 300 ] || { echo "no new master" >&2; exit 1; }
  sleep "$poll"
done
mark usr2
kill -WINCH "$old"
ok=0 n=0
while [ $ok -lt "$checks" ]; do
  if bash -c "exec 3<>/dev/tcp/\$0/\$1 && printf \"GET /health HTTP/1.0\\r\\nHost: \$0\\r\\n\\r\\n\" >&3 && IFS= read -r l <&3 && case \$l in *\" 200 \"*) exit 0;; esac; exit 1" "$addr" "$http_port"; then
    ok=$((ok + 1))
  else
    ok=0
  fi
  n=$((n + 1)); [ $n -lt 100 ] || { echo "health failed" >&2; exit 1; }
  [ $ok -ge "$checks" ] || sleep "$interval"
done
mark winch+health
while pgrep -P "$old" | grep -qvx "$cur"; do sleep "$poll"; done
mark drain
kill -QUIT "$old"
while [ -e /proc/$old ] && [ "$(cut -d" " -f3 /proc/$old/stat 2>/dev/null)" != Z ]; do sleep "$poll"; done
mark quit
'
args="$addr $http_port $checks $(ms "$interval_ms") $(ms "$poll_ms")"
case $mode in
  scp)
    # shellcheck disable=SC2086
    scp -q $opts -P "$port" "$bin" "$user@$addr:/srv/app/sbin/.nginx.bench-new"
    mark scp
    # shellcheck disable=SC2086
    printf '%s' "$dance" | ssh $opts -p "$port" "$user@$addr" sh -s -- $args
    ;;
  stream)
    b64=$(printf '%s' "$dance" | base64 -w0)
    # shellcheck disable=SC2086
    ssh $opts -p "$port" "$user@$addr" "cat > /srv/app/sbin/.nginx.bench-new && echo $b64 | base64 -d | sh -s -- $args" <"$bin"
    ;;
  *) echo "MODE must be scp or stream" >&2; exit 2 ;;
esac
mark exit
