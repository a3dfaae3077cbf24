/**
 * The configuration the daemon runs with: every flag's value, validated and
 * frozen by the command line (src/cli/config.ts builds it; command line >
 * FLANNELD_* > defaults) and passed down explicitly.
 */
import type { EtcdClientConfig } from '../lease/etcd/client';

export interface FlannelConfig {
  etcd: EtcdClientConfig;
  iface: readonly string[];
  ifaceRegex: readonly string[];
  ifaceCanReach: string;
  subnetFile: string;
  publicIp: string;
  publicIpv6: string;
  subnetLeaseRenewMarginMinutes: number;
  ipMasq: boolean;
  ipMasqFullyRandomDisable: boolean;
  kubeSubnetMgr: boolean;
  kubeApiUrl: string;
  kubeAnnotationPrefix: string;
  kubeconfigFile: string;
  healthzIp: string;
  healthzPort: number;
  iptablesResyncSeconds: number;
  iptablesForwardRules: boolean;
  ipBlackholeRoute: boolean;
  netConfigPath: string;
  setNodeNetworkUnavailable: boolean;
  verbosity: number;
  vmodule: string;
  logBacktraceAt: string;
}
