#!/usr/bin/python3
# zerodown test backend: a plain HTTP server that cannot hand over its listening socket to a
# successor (it has no such protocol): the only zero-downtime way to replace it is to take it out
# of the load balancer, drain, restart, check, put it back. The sandbox writes one copy per
# "build", with the three values below filled in (test/sandbox/upstream.ts, backendBinary()).
#
#   /health  200 "ok" (503 in a build that never becomes healthy)
#   /ver     the build's version
#   /slow    answers after 1 s (a request in flight during a drain)
#   /        "hello from VERSION"; a flaky build answers 500 to every FAIL_EVERY-th request
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "@VERSION@"
FAIL_EVERY = int("@FAIL_EVERY@")
HEALTHY = "@HEALTHY@" == "yes"

count = 0
count_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        global count
        path = self.path.split("?")[0]
        if path == "/health":
            return self.reply(200, "ok\n") if HEALTHY else self.reply(503, "not ready\n")
        if path == "/ver":
            return self.reply(200, VERSION + "\n")
        if path == "/slow":
            time.sleep(1.0)
            return self.reply(200, "slow " + VERSION + "\n")
        with count_lock:
            count += 1
            n = count
        if FAIL_EVERY > 0 and n % FAIL_EVERY == 0:
            return self.reply(500, "failing " + VERSION + "\n")
        return self.reply(200, "hello from " + VERSION + "\n")

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
