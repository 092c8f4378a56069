# shellcheck shell=bash
# HAProxy hosts for the sandbox (sandbox.sh up --server haproxy): sourced by sandbox.sh, which
# calls haproxy_install_files, haproxy_start, haproxy_stop and haproxy_json. See README.md.
#
# A host runs Debian's HAProxy in master-worker mode (-W -D), started as the deploy user with an
# ABSOLUTE argv[0] (/srv/app/sbin/haproxy, a copy the deploy user may replace): the master
# re-executes argv[0] on every reload, and one without a slash would be looked up in PATH.
# Behind /slow/N a small backend answers one byte a second for N seconds: it holds an old worker
# busy, for drain tests.

HAPROXY_SRC=${HAPROXY_SRC:-/usr/sbin/haproxy}

# The config reacts to the binary's version string (test builds patch it, see README.md):
# >= 9.5 answers /health with 500; 9.4 binds a port that is taken, so its reload fails (wait
# mode); 9.3 asks for a chroot that the unprivileged worker cannot do: its new worker dies.
haproxy_write_conf() { # $1 = host dir, $2 = address
  cat >"$1/srv-app/conf/haproxy.cfg" <<EOF
# written by test/sandbox/server-haproxy.sh for host $2
global
    master-worker
    pidfile /run/haproxy.pid
    nbthread 2
.if version_atleast(9.3) && version_before(9.4)
    chroot /var/empty/zerodown-none
.endif

defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s

frontend web
    bind $2:$HTTP_PORT
.if version_atleast(9.5)
    http-request return status 500 content-type text/plain string "broken\n" if { path /health }
.elif version_atleast(9.4)
    bind $2:$((HTTP_PORT + 1))
.endif
    http-request return status 200 content-type text/plain string "ok\n" if { path /health }
    # pid of the worker that answered: tells old workers from new ones
    http-request return status 200 content-type text/plain lf-string "%pid\n" if { path /pid }
    http-request return status 404 if !{ path_beg /slow/ }
    use_backend slow

backend slow
    server slow1 $2:$((HTTP_PORT + 1))
EOF
}

# the slow backend: /slow/N answers N bytes, one a second; /slow/N/GATE the same, but once the
# file release-GATE exists beside the script, the bytes left are sent at once (a test holds a
# request in flight for exactly as long as it needs, whatever the machine's load)
haproxy_write_slow() { # $1 = host dir
  cat >"$1/srv-app/slow.py" <<'EOF'
# written by test/sandbox/server-haproxy.sh: GET /slow/N sends N bytes, one a second;
# GET /slow/N/GATE sends the rest at once when release-GATE exists beside this script
import http.server, os, socketserver, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))

class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        parts = self.path.split('/')[2:]
        n = int(parts[0]) if parts and parts[0].isdigit() else 60
        gate = parts[1] if len(parts) > 1 and parts[1].isalnum() else None
        self.send_response(200)
        self.send_header('content-type', 'text/plain')
        self.send_header('content-length', str(n))
        self.end_headers()
        for i in range(n):
            if gate and os.path.exists(os.path.join(HERE, 'release-' + gate)):
                self.wfile.write(b'.' * (n - i))
                self.wfile.flush()
                return
            self.wfile.write(b'.')
            self.wfile.flush()
            time.sleep(1)

    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

Server((sys.argv[1], int(sys.argv[2])), Slow).serve_forever()
EOF
}

haproxy_install_files() { # $1 = host dir, $2 = address
  local h=$1
  [[ -x $HAPROXY_SRC ]] || die "haproxy binary $HAPROXY_SRC not found (apt-get install haproxy)"
  mkdir -p "$h/srv-app/sbin" "$h/srv-app/conf" "$h/srv-app/logs"
  cp "$HAPROXY_SRC" "$h/srv-app/sbin/haproxy.tmp"
  chmod 0755 "$h/srv-app/sbin/haproxy.tmp"
  mv -f "$h/srv-app/sbin/haproxy.tmp" "$h/srv-app/sbin/haproxy"
  haproxy_write_conf "$h" "$2"
  haproxy_write_slow "$h"
  chown -R "$SB_USER:$SB_USER" "$h/srv-app"
}

# haproxy_masters: live pids in $HOST_NS that run a haproxy binary and whose parent is not one
haproxy_masters() {
  local p parent
  for p in $(pids_in_ns "$HOST_NS"); do
    [[ $(cmdline_of "$p") == */sbin/haproxy\ * ]] || continue
    parent=$(ppid_of "$p")
    [[ -n $parent && $(cmdline_of "$parent") == */sbin/haproxy\ * ]] && continue
    printf '%s\n' "$p"
  done
  return 0
}

haproxy_start() { # uses H, HID, SSHD_PID; sets SERVER_PID
  local addr=$NET.$HID i pid st
  local drop=(setpriv --reuid="$SB_USER" --regid="$SB_USER" --init-groups --)
  command -v setpriv >/dev/null 2>&1 || drop=(runuser -u "$SB_USER" --)
  rm -f "$H/run/haproxy.pid"
  # the slow backend (unless it still runs), detached (setsid) so that it outlives this command
  # (an `a || b &` list would put port_in_use's subshell, which holds our stdout, in the background)
  if ! port_in_use "$addr" "$((HTTP_PORT + 1))"; then
    nsenter -t "$SSHD_PID" -m -- env -i PATH=/usr/bin:/bin "${drop[@]}" \
      setsid python3 /srv/app/slow.py "$addr" "$((HTTP_PORT + 1))" </dev/null >>"$H/slow.log" 2>&1 &
  fi
  nsenter -t "$SSHD_PID" -m -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/$SB_USER \
    "${drop[@]}" /srv/app/sbin/haproxy -W -D -f /srv/app/conf/haproxy.cfg \
    </dev/null >>"$H/haproxy-start.log" 2>&1 ||
    {
      tail -n 20 "$H/haproxy-start.log" >&2 2>/dev/null || true
      die "haproxy of host $addr did not start"
    }
  SERVER_PID=""
  for ((i = 0; i < 250; i++)); do
    pid=$(cat "$H/run/haproxy.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && [[ $(http_get "$addr" "$((HTTP_PORT + 1))" /slow/0) == 200 ]]; then
      st=$(http_get "$addr" "$HTTP_PORT" /health)
      if [[ $st == 200 ]]; then SERVER_PID=$pid && break; fi
    fi
    sleep 0.02
  done
  if [[ -z $SERVER_PID ]]; then
    tail -n 20 "$H/haproxy-start.log" "$H/slow.log" >&2 2>/dev/null || true
    die "haproxy of host $addr did not answer 200 on http://$addr:$HTTP_PORT/health within 5 s"
  fi
}

haproxy_stop() { # uses H, HID, HOST_NS, SSHD_PID
  local masters rest p
  masters=$(haproxy_masters)
  # TERM to the master = hard stop of master and workers: open /slow requests do not hold it up
  for p in $masters; do kill -TERM "$p" 2>/dev/null || true; done
  # shellcheck disable=SC2086
  [[ -z $masters ]] || wait_gone 30 $masters || log "haproxy masters of host $HID ignored TERM; killing"
  rest=$(non_ssh_pids)
  for p in $rest; do kill -KILL "$p" 2>/dev/null || true; done
  # shellcheck disable=SC2086
  [[ -z $rest ]] || wait_gone 30 $rest || log "warning: processes still alive on host $HID: $(echo $rest)"
  rm -f "$H/run/haproxy.pid"
}

haproxy_json() { # the server's fields of the host's JSON
  printf '"binaryPath": "/srv/app/sbin/haproxy", "pidFile": "/run/haproxy.pid", "prefix": "/srv/app", "confPath": "/srv/app/conf/haproxy.cfg"'
}
