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
      'Trusted host key fingerprints (SHA256:..., as ssh-keygen -lf prints), separated by spaces, commas or newlines.',
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
    name: 'connect-timeout',
    description: 'How long to wait for an SSH connection (250ms, 30s, 5m or seconds).',
    default: '20s',
    required: false
  },
  {
    name: 'mode',
    description:
      "deploy: upgrade to binary. rollback: hot-upgrade back to the previous release (or rollback-to) from the host's release store.",
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
    name: 'pid-file',
    description: 'Remote pid file of the master (the pid directive of nginx.conf).',
    default: '/run/nginx.pid',
    required: false
  },
  {
    name: 'start-timeout',
    description:
      'How long the new server may take to start and serve beside the old one (nginx: a new master with workers).',
    default: '30s',
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
      'What a drain timeout does: rollback (default; the old version keeps serving) or proceed (QUIT the old master; its workers finish on their own).',
    default: 'rollback',
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
    name: 'rollback-fleet',
    description: 'When a host fails, roll back the hosts already upgraded in this run.',
    default: 'true',
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
  }
]

export const OUTPUTS: readonly { name: string; description: string }[] = [
  {
    name: 'result',
    description: 'upgraded, rolled-back, unchanged or failed.'
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
      "JSON: one entry per host with its result and each step's start, end, outcome and observations."
  }
]
