// Generated from action.yml by scripts/docs.mjs (npm run docs). Do not edit by hand.

/** One input of action.yml: the command line offers it as --<name> and ZERODOWN_<NAME>. */
export interface InputSpec {
  name: string
  description: string
  default?: string
  required: boolean
}

export const INPUTS: readonly InputSpec[] = [
  {
    name: 'hosts',
    description:
      'Hosts to upgrade, as [user@]host[:port], one per line or comma-separated. IPv6 in brackets: [2001:db8::1]:22.',
    required: true
  },
  {
    name: 'user',
    description: 'SSH user for hosts that do not name one.',
    default: 'root',
    required: false
  },
  {
    name: 'port',
    description: 'SSH port for hosts that do not name one.',
    default: '22',
    required: false
  },
  {
    name: 'private-key',
    description:
      'SSH private key (OpenSSH or PEM), from a secret. Masked in logs. Without it (and without password), the ssh-agent of SSH_AUTH_SOCK is used.',
    default: '',
    required: false
  },
  {
    name: 'passphrase',
    description: 'Passphrase of private-key, if it has one. Masked in logs.',
    default: '',
    required: false
  },
  {
    name: 'password',
    description: 'SSH password, when no key is used. Masked in logs.',
    default: '',
    required: false
  },
  {
    name: 'known-hosts',
    description:
      'OpenSSH known_hosts lines for the hosts (and the jump host); [host]:port and hashed entries work. Output of ssh-keyscan, checked out of band.',
    default: '',
    required: false
  },
  {
    name: 'host-fingerprints',
    description:
      'Trusted host key fingerprints, each bound to its host: host=SHA256:... (the fingerprint as ssh-keygen -lf prints it; the host as written in hosts or jump-host, or [host]:port), separated by spaces, commas or newlines. A bare SHA256:... is accepted only when the run connects to one host.',
    default: '',
    required: false
  },
  {
    name: 'insecure-skip-host-key-check',
    description: 'Accept any host key (logs a warning). Only for throwaway test hosts.',
    default: 'false',
    required: false
  },
  {
    name: 'sudo',
    description: 'Run privileged commands through sudo -n (never types a password).',
    default: 'false',
    required: false
  },
  {
    name: 'sudo-helper',
    description:
      'With sudo: true, run every privileged command as one sub-command of this root-owned helper (host/zerodown-sudo, installed at /usr/local/libexec/zerodown/zerodown-sudo) instead of plain sudo -n, so that the sudoers rule names the helper alone. nginx hot upgrade only. See docs/sudo.md.',
    default: '',
    required: false
  },
  {
    name: 'connect-timeout',
    description: 'How long to wait for an SSH connection (250ms, 30s, 5m or seconds).',
    default: '20s',
    required: false
  },
  {
    name: 'mode',
    description:
      "deploy: upgrade to binary. rollback: hot-upgrade back to the previous release (or rollback-to) from the host's release store. plan: say what a deploy of binary would do on each host and change nothing (fails when a deploy would be refused on any host). status: list what each host runs and its release store. commit: retire the old processes a hold: true run left held on the hosts. abort: return every held host to its original process and previous binary.",
    default: 'deploy',
    required: false
  },
  {
    name: 'binary',
    description: 'Local path of the new binary on the runner (deploy mode).',
    default: '',
    required: false
  },
  {
    name: 'binary-path',
    description:
      "Remote live path of the binary. Default: the running master's executable (read from /proc). When set, it must be that file.",
    default: '',
    required: false
  },
  {
    name: 'supervisor',
    description:
      "How the server hands over to its new binary: nginx (USR2/WINCH/QUIT; also the forks that keep nginx's signals), haproxy (master-worker reload) or tableflip (Go servers on cloudflare/tableflip, and any server that behaves the same).",
    default: 'nginx',
    required: false
  },
  {
    name: 'pid-file',
    description:
      "Remote pid file of the server's master process (nginx: the pid directive of nginx.conf; tableflip: the file the server's Options.PIDFile names). Default: /run/nginx.pid for nginx, /run/haproxy.pid for haproxy; required for tableflip.",
    default: '',
    required: false
  },
  {
    name: 'master-user',
    description:
      "User the server's master may run as besides root and the SSH user (e.g. www-data). A master of any other user is refused: another user's process can pose as the server by writing the pid file.",
    default: '',
    required: false
  },
  {
    name: 'upgrade-signal',
    description:
      'Signal that starts a handoff (supervisor tableflip only; nginx and haproxy use USR2): HUP, USR1 or USR2.',
    default: 'HUP',
    required: false
  },
  {
    name: 'start-timeout',
    description:
      'How long the new binary may take to be ready after the upgrade signal (nginx: a new master with workers; tableflip: the pid file naming the new process).',
    default: '30s',
    required: false
  },
  {
    name: 'verify-command',
    description:
      "Command run on the host by sh against the staged new binary before it replaces the live one; exit status 0 passes, anything else stops the upgrade with nothing changed. {binary} is replaced by the staged file's path (quoted). For servers with no config test of their own, e.g. '{binary} -version'.",
    default: '',
    required: false
  },
  {
    name: 'health-url',
    description:
      "URL checked from the host's side through the SSH connection (http or https; {host} is replaced by the host's address). 2xx passes.",
    default: '',
    required: false
  },
  {
    name: 'health-command',
    description:
      "Command run on the host by sh; exit status 0 passes. {host} is replaced by the host's address.",
    default: '',
    required: false
  },
  {
    name: 'health-expect',
    description: 'Regular expression the health response body must match.',
    default: '',
    required: false
  },
  {
    name: 'health-checks',
    description: 'Consecutive passes the new binary needs.',
    default: '3',
    required: false
  },
  {
    name: 'health-interval',
    description: 'Time between health checks.',
    default: '1s',
    required: false
  },
  {
    name: 'health-timeout',
    description: 'Time the health gate may take in all.',
    default: '60s',
    required: false
  },
  {
    name: 'poll-interval',
    description: 'How often the drain (and other waits) read the host state.',
    default: '250ms',
    required: false
  },
  {
    name: 'drain-timeout',
    description: 'How long old workers may take to finish their requests once they stopped accepting.',
    default: '5m',
    required: false
  },
  {
    name: 'drain-timeout-action',
    description:
      'What a drain timeout does: rollback (the old version keeps serving) or proceed (the old process is retired; it finishes its requests on its own). Default: rollback; proceed for tableflip, where the old process already stopped accepting and going back would cut its requests (rollback is refused there).',
    default: '',
    required: false
  },
  {
    name: 'release-dir',
    description: 'Release store on each host. Default: /var/lib/zerodown/<binary name>.',
    default: '',
    required: false
  },
  {
    name: 'keep-releases',
    description: 'Releases kept in the store (the live one and the one before it are never pruned).',
    default: '5',
    required: false
  },
  {
    name: 'version',
    description:
      "Version of the new binary, kept as written: semver (1.27.3) or a Debian version (1.22.1-9+deb12u11). Compared with the live one by semver when both are plain semver, else by Debian's ordering. Default: detected from the binary (nginx -v).",
    default: '',
    required: false
  },
  {
    name: 'allow-downgrade',
    description: 'Allow deploying a lower version than the live one.',
    default: 'false',
    required: false
  },
  {
    name: 'rollback-to',
    description:
      'With mode rollback: the release to go back to, by its version as recorded or its sha256 (12 or more hex digits); it must name exactly one release. Default: the release before the live one.',
    default: '',
    required: false
  },
  {
    name: 'rollback-workflow',
    description:
      "The workflow that rolls these hosts back, linked from the job summary: its file in .github/workflows (rollback.yml) or its URL. Default: the checkout's workflow that runs this action with mode: rollback, if there is one.",
    default: '',
    required: false
  },
  {
    name: 'canary',
    description: 'Hosts upgraded first, alone, before the rest. Default: 1 when there is more than one host.',
    default: '',
    required: false
  },
  {
    name: 'max-parallel',
    description: 'Hosts upgraded at the same time after the canary.',
    default: '1',
    required: false
  },
  {
    name: 'idle-connections',
    description:
      "Hosts that wait in a fleet run (pre-staged for their batch, or parked until every host passed) keep their SSH connection open up to this many. Beyond it, the hosts that waited longest close theirs and log in again to go on, and every few minutes to renew their lock and watchdog. It bounds the runner's memory on large fleets; 0 closes every waiting host's connection.",
    default: '64',
    required: false
  },
  {
    name: 'rollback-fleet',
    description:
      'When a host fails, roll back the hosts already upgraded in this run (their old processes are held until every host passed). Default: true where the supervisor can hold its old process (nginx); false for haproxy and tableflip, which refuse true with more than one host.',
    default: '',
    required: false
  },
  {
    name: 'shard',
    description:
      'Run on one part of hosts only, as i/n: the i-th of n contiguous slices in the order given (sizes differ by one at most), for a matrix of jobs that share one hosts list.',
    default: '',
    required: false
  },
  {
    name: 'hold',
    description:
      'Upgrade the hosts but leave each old process held (parked) instead of committing, for a later run with mode commit or abort; the watchdog rolls a held host back by itself after hold-timeout. tableflip and haproxy, which cannot park their old process, complete the hand-over and keep the previous binary: abort hands over back to it.',
    default: 'false',
    required: false
  },
  {
    name: 'hold-timeout',
    description:
      'With hold: how long a held host waits for mode commit or abort before its watchdog returns it to its original process.',
    default: '30m',
    required: false
  },
  {
    name: 'prestage',
    description:
      'Upload and verify the new binary on every host of the run first, in parallel, before any host is signalled; a host that fails it stops the run before any host changes.',
    default: 'false',
    required: false
  },
  {
    name: 'jump-host',
    description:
      'Bastion to reach the hosts through, as [user@]host[:port]; its host key is verified like any other.',
    default: '',
    required: false
  },
  {
    name: 'jump-private-key',
    description:
      "Private key for the jump host. When no jump-* credential is given, the jump host uses the hosts' (private-key, passphrase, password, ssh-agent). Masked in logs.",
    default: '',
    required: false
  },
  {
    name: 'jump-passphrase',
    description: 'Passphrase of jump-private-key. Default: passphrase. Masked in logs.',
    default: '',
    required: false
  },
  {
    name: 'jump-password',
    description: 'SSH password for the jump host. Masked in logs.',
    default: '',
    required: false
  },
  {
    name: 'lock-lease',
    description:
      'How long a deploy lock on a host lasts without renewal before another run may take it over.',
    default: '15m',
    required: false
  },
  {
    name: 'watchdog',
    description:
      'Start a watchdog on each host that rolls it back by itself if the action vanishes mid-upgrade.',
    default: 'true',
    required: false
  },
  {
    name: 'strategy',
    description:
      'hot-upgrade (default): hand over on each host (nginx USR2). upstream: traffic shifting through an nginx load balancer (mark a host down, drain, restart, check, put back), for servers that cannot hand over their sockets.',
    default: 'hot-upgrade',
    required: false
  },
  {
    name: 'upstream-host',
    description:
      'Strategy upstream: the nginx load balancer, [user@]host[:port], reached and verified like the hosts (same key, known-hosts, jump host, sudo).',
    default: '',
    required: false
  },
  {
    name: 'upstream-file',
    description:
      'Strategy upstream: the file on the load balancer that the action manages, included inside http {}, holding the upstream block.',
    default: '',
    required: false
  },
  {
    name: 'upstream-name',
    description: 'Strategy upstream: the name of the upstream block in upstream-file.',
    default: '',
    required: false
  },
  {
    name: 'upstream-server',
    description:
      'Strategy upstream: how each host appears as a server line in the block; {host} is the host as written in hosts.',
    default: '{host}:80',
    required: false
  },
  {
    name: 'restart-command',
    description:
      'Strategy upstream: run on a host (by sh, through sudo -n when sudo is true) after its binary is swapped, to start the new version; it must return once the server is started (systemctl restart app).',
    default: '',
    required: false
  },
  {
    name: 'canary-weight',
    description: 'Strategy upstream: the weight the canary hosts come back at, before their full weight.',
    default: '1',
    required: false
  },
  {
    name: 'canary-duration',
    description:
      "Strategy upstream: how long the canary is watched at canary-weight through the load balancer's access log before it gets its full weight (0s: not watched).",
    default: '0s',
    required: false
  },
  {
    name: 'max-error-rate',
    description:
      "Strategy upstream: the share of the canary's tries through the load balancer that may fail (5xx, or nginx moved on to another server) during canary-duration; above it the canary is rolled back.",
    default: '1%',
    required: false
  },
  {
    name: 'upstream-watchdog-lease',
    description:
      "Strategy upstream, with watchdog: true: how long the load balancer's watchdog waits without word from the run (renewed every third of it) before it puts the upstream block back as the run found it. Default: 2m.",
    default: '',
    required: false
  }
]

export const OUTPUTS: readonly { name: string; description: string }[] = [
  {
    name: 'result',
    description:
      'upgraded, rolled-back, unchanged or failed; mode plan: planned or refused; mode status: listed or failed.'
  },
  {
    name: 'supervisor',
    description: 'The supervisor that handed over on the hosts: nginx or haproxy.'
  },
  {
    name: 'version',
    description: 'Version now serving (comma-separated when hosts differ).'
  },
  {
    name: 'previous-version',
    description: 'Version that served before.'
  },
  {
    name: 'old-pid',
    description: 'Pid of the old master on each host, comma-separated in host order.'
  },
  {
    name: 'new-pid',
    description: 'Pid of the new master on each host, comma-separated in host order.'
  },
  {
    name: 'duration',
    description: 'Wall time of the whole run, in milliseconds.'
  },
  {
    name: 'report',
    description:
      "JSON: one entry per host with its result and each step's start, end, outcome and observations (mode plan: each host's plan; mode status: each host's status and releases). GitHub keeps at most 1 MB of outputs per job: past 250,000 characters (a few hundred hosts) the hosts that went well lose their detail first, and `truncated` says what was left out (the log keeps every step)."
  }
]
