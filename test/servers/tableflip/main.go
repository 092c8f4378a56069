// Command app is the test server of the tableflip supervisor: a small HTTP server that hands its
// listening socket to a new copy of itself through github.com/cloudflare/tableflip.
//
// It is also the worked example of docs/upgradable-server.md. The contract it keeps:
//   - started from an absolute path (tableflip re-executes os.Args[0] on an upgrade);
//   - an upgrade signal (SIGHUP unless -upgrade-signal says otherwise) calls Upgrade();
//   - the new process writes the pid file (Options.PIDFile) only once it is ready to serve;
//   - the old process stops accepting at once, finishes its requests and exits, within a bound.
//
// Its behaviour is fixed at build time, so that each variant is a file with its own sha256:
//
//	go build -ldflags "-X main.version=1.2.3 -X main.mode=unhealthy"
//
// mode: "" (works), "unhealthy" (/health answers 500), "exit" (exits at once, before it is
// ready), "hang" (takes the sockets but never becomes ready).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
)

// Set with -ldflags -X at build time.
var (
	version = "0.0.0"
	mode    = ""
)

var upgradeSignals = map[string]os.Signal{
	"HUP":  syscall.SIGHUP,
	"USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	pidFile := flag.String("pid-file", "", "pid file, written when the process is ready")
	upgradeSig := flag.String("upgrade-signal", "HUP", "signal that starts an upgrade: HUP, USR1 or USR2")
	upgradeTimeout := flag.Duration("upgrade-timeout", time.Minute, "how long a new process may take to become ready")
	shutdownTimeout := flag.Duration("shutdown-timeout", 30*time.Second, "how long an old process may take to finish its requests")
	showVersion := flag.Bool("version", false, "print the version and exit")
	failFile := flag.String("health-fail-file", "", "/health answers 500 while this file holds this build's version (one host of a fleet fails)")
	flag.Parse()

	if *showVersion {
		fmt.Printf("app version %s\n", version)
		return
	}
	log.SetPrefix(fmt.Sprintf("app %s pid %d: ", version, os.Getpid()))
	sig, ok := upgradeSignals[*upgradeSig]
	if !ok {
		log.Fatalf("-upgrade-signal must be HUP, USR1 or USR2, not %q", *upgradeSig)
	}
	if mode == "exit" {
		log.Fatal("built to exit at once (mode exit)")
	}

	upg, err := tableflip.New(tableflip.Options{PIDFile: *pidFile, UpgradeTimeout: *upgradeTimeout})
	if err != nil {
		log.Fatal(err)
	}
	go onSignals(upg, sig)

	ln, err := upg.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("cannot listen on %s: %v", *listen, err)
	}
	if mode == "hang" {
		// Holds the inherited socket without serving or calling Ready: the parent must go on serving
		// and, after -upgrade-timeout, kill this process.
		log.Print("built never to become ready (mode hang)")
		select {}
	}

	server := &http.Server{Handler: routes(*failFile), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := server.Serve(ln); err != http.ErrServerClosed {
			log.Printf("serve: %v", err)
		}
	}()
	if err := upg.Ready(); err != nil {
		log.Fatalf("ready: %v", err)
	}
	log.Printf("ready on %s (parent: %v)", *listen, upg.HasParent())

	<-upg.Exit()
	drain(server, *shutdownTimeout)
}

// onSignals turns the upgrade signal into Upgrade() and TERM or INT into a graceful stop.
func onSignals(upg *tableflip.Upgrader, upgrade os.Signal) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, upgrade, syscall.SIGTERM, syscall.SIGINT)
	for s := range c {
		if s != upgrade {
			log.Printf("%v: stopping", s)
			upg.Stop()
			return
		}
		log.Printf("%v: upgrading", s)
		if err := upg.Upgrade(); err != nil {
			log.Printf("upgrade failed: %v", err)
			continue
		}
		log.Print("upgrade done: the new process is ready; draining")
	}
}

// drain stops accepting at once, lets the requests in flight finish, and exits; past the timeout
// it exits anyway (a stuck client must not keep an old version alive forever).
func drain(server *http.Server, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		log.Printf("drain cut short after %v: %v", timeout, err)
		os.Exit(1)
	}
	log.Print("drained; exiting")
}

func routes(failFile string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if mode == "unhealthy" {
			http.Error(w, "unhealthy (mode unhealthy)", http.StatusInternalServerError)
			return
		}
		if b, err := os.ReadFile(failFile); failFile != "" && err == nil && strings.TrimSpace(string(b)) == version {
			http.Error(w, "unhealthy ("+failFile+" names this version)", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, version) })
	mux.HandleFunc("/pid", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, os.Getpid()) })
	// /slow?ms=N answers after N ms (1000 by default): a request that keeps an old process draining.
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			ms = 1000
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			fmt.Fprintf(w, "slow %d ms from %d\n", ms, os.Getpid())
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "app %s pid %d\n", version, os.Getpid())
	})
	return mux
}
