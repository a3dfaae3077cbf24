/**
 * flanneld's flags (docs/compatibility.md §1.1) and their FLANNELD_* environment mapping
 * (docs/compatibility.md §1.2).
 */
import { type FlagSpec, type FlagValue, type ParsedFlags, setFlagValue } from './go-flags';

export const FLANNEL_FLAGS: readonly FlagSpec[] = [
  { name: 'etcd-endpoints', kind: 'string', default: 'http://127.0.0.1:4001,http://127.0.0.1:2379', usage: 'a comma-delimited list of etcd endpoints' },
  { name: 'etcd-prefix', kind: 'string', default: '/coreos.com/network', usage: 'etcd prefix' },
  { name: 'etcd-keyfile', kind: 'string', default: '', usage: 'SSL key file used to secure etcd communication' },
  { name: 'etcd-certfile', kind: 'string', default: '', usage: 'SSL certification file used to secure etcd communication' },
  { name: 'etcd-cafile', kind: 'string', default: '', usage: 'SSL Certificate Authority file used to secure etcd communication' },
  { name: 'etcd-username', kind: 'string', default: '', usage: 'username for BasicAuth to etcd' },
  { name: 'etcd-password', kind: 'string', default: '', usage: 'password for BasicAuth to etcd' },
  {
    name: 'iface',
    kind: 'stringList',
    default: [],
    usage: 'interface to use (IP or name) for inter-host communication. Can be specified multiple times to check each option in order. Returns the first match found.',
  },
  {
    name: 'iface-regex',
    kind: 'stringList',
    default: [],
    usage: 'regex expression to match the first interface to use (IP or name) for inter-host communication. Can be specified multiple times to check each regex in order. Returns the first match found. Regexes are checked after specific interfaces specified by the iface option have already been checked.',
  },
  {
    name: 'iface-can-reach',
    kind: 'string',
    default: '',
    usage: "detect interface to use (IP or name) for inter-host communication based on which will be used for provided IP. This is exactly the interface to use of command 'ip route get <ip-address>'",
  },
  { name: 'subnet-file', kind: 'string', default: '/run/flannel/subnet.env', usage: 'filename where env variables (subnet, MTU, ... ) will be written to' },
  { name: 'public-ip', kind: 'string', default: '', usage: 'IP accessible by other nodes for inter-host communication' },
  { name: 'public-ipv6', kind: 'string', default: '', usage: 'IPv6 accessible by other nodes for inter-host communication' },
  { name: 'subnet-lease-renew-margin', kind: 'int', default: 60, usage: 'subnet lease renewal margin, in minutes, ranging from 1 to 1439' },
  { name: 'ip-masq', kind: 'bool', default: false, usage: 'setup IP masquerade rule for traffic destined outside of overlay network' },
  { name: 'ip-masq-fully-random-disable', kind: 'bool', default: false, usage: 'disable the --random-fully / fully-random option of the masquerade rules' },
  { name: 'kube-subnet-mgr', kind: 'bool', default: false, usage: 'contact the Kubernetes API for subnet assignment instead of etcd.' },
  { name: 'kube-api-url', kind: 'string', default: '', usage: 'Kubernetes API server URL. Does not need to be specified if flannel is running in a pod.' },
  {
    name: 'kube-annotation-prefix',
    kind: 'string',
    default: 'flannel.alpha.coreos.com',
    usage: 'Kubernetes annotation prefix. Can contain single slash "/", otherwise it will be appended at the end.',
  },
  { name: 'kubeconfig-file', kind: 'string', default: '', usage: 'kubeconfig file location. Does not need to be specified if flannel is running in a pod.' },
  { name: 'version', kind: 'bool', default: false, usage: 'print version and exit' },
  { name: 'healthz-ip', kind: 'string', default: '0.0.0.0', usage: 'the IP address for healthz server to listen' },
  { name: 'healthz-port', kind: 'int', default: 0, usage: 'the port for healthz server to listen(0 to disable)' },
  { name: 'iptables-resync', kind: 'int', default: 5, usage: 'resync period for iptables rules, in seconds' },
  { name: 'iptables-forward-rules', kind: 'bool', default: true, usage: 'add default accept rules to FORWARD chain in iptables' },
  { name: 'ip-blackhole-route', kind: 'bool', default: false, usage: 'add a blackhole route for the own subnet (and keep it)' },
  { name: 'net-config-path', kind: 'string', default: '/etc/kube-flannel/net-conf.json', usage: 'path to the network configuration file' },
  { name: 'set-node-network-unavailable', kind: 'bool', default: true, usage: 'set NodeNetworkUnavailable after ready' },
  { name: 'v', kind: 'int', default: 0, usage: 'number for the log level verbosity', base10Only: true },
  { name: 'log-format', kind: 'string', default: 'text', usage: 'log line format: text (klog, as upstream) or json (one JSON object per line)' },
  { name: 'vmodule', kind: 'string', default: '', usage: 'comma-separated list of pattern=N settings for file-filtered logging' },
  { name: 'log_backtrace_at', kind: 'string', default: '', usage: 'when logging hits line file:N, emit a stack trace' },
];

/** FLANNELD_ + the flag name upper-cased with '-' and '.' as '_' (coreos/pkg flagutil). */
export function envName(flag: string): string {
  return 'FLANNELD_' + flag.toUpperCase().replace(/[-.]/g, '_');
}

export interface EnvProblem {
  variable: string;
  value: string;
  error: string;
}

/**
 * Fills flags not given on the command line from FLANNELD_* variables
 * (docs/compatibility.md §1.2): an empty value is ignored; a repeatable flag gets exactly
 * one element (no comma splitting); a value that does not parse leaves the
 * default and is reported. FLANNELD_VERSION has no effect: -version is
 * decided before the environment is read.
 */
export function applyEnvironment(parsed: ParsedFlags, specs: readonly FlagSpec[], env: NodeJS.ProcessEnv): EnvProblem[] {
  const problems: EnvProblem[] = [];
  for (const spec of specs) {
    if (spec.name === 'version' || parsed.setOnCommandLine.has(spec.name)) continue;
    const variable = envName(spec.name);
    const value = env[variable];
    if (value === undefined || value === '') continue;
    const scratch = new Map<string, FlagValue>([[spec.name, spec.kind === 'stringList' ? [] : spec.default]]);
    const error = setFlagValue(spec, value, scratch);
    if (error !== undefined) {
      problems.push({ variable, value, error });
      continue;
    }
    parsed.values.set(spec.name, scratch.get(spec.name)!);
  }
  return problems;
}
