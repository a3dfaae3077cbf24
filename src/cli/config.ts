/**
 * The one validated, frozen configuration object the daemon is built from.
 * Built once from the parsed flags (command line > FLANNELD_* > defaults)
 * and passed down explicitly; nothing reads flags or the environment later.
 */
import type { FlannelConfig } from '../daemon/config';
import { NamedError } from '../util/errors';
import type { FlagValue, ParsedFlags } from './go-flags';

export type { FlannelConfig };

/** A flag value that parsed but is not acceptable; the message is upstream's where it has one. */
export class ConfigError extends NamedError {}

function str(v: Map<string, FlagValue>, k: string): string {
  return v.get(k) as string;
}
function num(v: Map<string, FlagValue>, k: string): number {
  return v.get(k) as number;
}
function bool(v: Map<string, FlagValue>, k: string): boolean {
  return v.get(k) as boolean;
}
function list(v: Map<string, FlagValue>, k: string): readonly string[] {
  return Object.freeze([...(v.get(k) as string[])]);
}

export function buildConfig(parsed: ParsedFlags): FlannelConfig {
  const v = parsed.values;
  const margin = num(v, 'subnet-lease-renew-margin');
  // docs/compatibility.md §0 step 4.
  if (margin < 1 || margin > 1439) {
    throw new ConfigError('Invalid subnet-lease-renew-margin option, out of acceptable range');
  }
  const healthzPort = num(v, 'healthz-port');
  if (healthzPort < 0 || healthzPort > 65535) {
    throw new ConfigError(`-healthz-port must be 0 (disabled) or a TCP port 1..65535, got ${healthzPort}`);
  }
  const resync = num(v, 'iptables-resync');
  if (resync < 1) throw new ConfigError(`-iptables-resync must be at least 1 second, got ${resync}`);
  const cfg: FlannelConfig = {
    etcd: Object.freeze({
      endpoints: Object.freeze(str(v, 'etcd-endpoints').split(',')),
      prefix: str(v, 'etcd-prefix'),
      keyFile: str(v, 'etcd-keyfile'),
      certFile: str(v, 'etcd-certfile'),
      caFile: str(v, 'etcd-cafile'),
      username: str(v, 'etcd-username'),
      password: str(v, 'etcd-password'),
    }),
    iface: list(v, 'iface'),
    ifaceRegex: list(v, 'iface-regex'),
    ifaceCanReach: str(v, 'iface-can-reach'),
    subnetFile: str(v, 'subnet-file'),
    publicIp: str(v, 'public-ip'),
    publicIpv6: str(v, 'public-ipv6'),
    subnetLeaseRenewMarginMinutes: margin,
    ipMasq: bool(v, 'ip-masq'),
    ipMasqFullyRandomDisable: bool(v, 'ip-masq-fully-random-disable'),
    kubeSubnetMgr: bool(v, 'kube-subnet-mgr'),
    kubeApiUrl: str(v, 'kube-api-url'),
    kubeAnnotationPrefix: str(v, 'kube-annotation-prefix'),
    kubeconfigFile: str(v, 'kubeconfig-file'),
    healthzIp: str(v, 'healthz-ip'),
    healthzPort,
    iptablesResyncSeconds: resync,
    iptablesForwardRules: bool(v, 'iptables-forward-rules'),
    ipBlackholeRoute: bool(v, 'ip-blackhole-route'),
    netConfigPath: str(v, 'net-config-path'),
    setNodeNetworkUnavailable: bool(v, 'set-node-network-unavailable'),
    verbosity: num(v, 'v'),
    vmodule: str(v, 'vmodule'),
    logBacktraceAt: str(v, 'log_backtrace_at'),
  };
  return Object.freeze(cfg);
}

/** The configuration for the startup log line, with the etcd password redacted (docs/compatibility.md §12: upstream logs it). */
export function redactedConfig(cfg: FlannelConfig): Record<string, unknown> {
  return { ...cfg, etcd: { ...cfg.etcd, password: cfg.etcd.password === '' ? '' : '<redacted>' } };
}
