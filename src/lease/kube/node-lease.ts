/**
 * Pure kube-mode logic (docs/compatibility.md §11.5, §11.6, §11.8): Node objects to leases,
 * the own node's subnets and annotation patch, the NetworkUnavailable
 * condition, and the stored VtepMAC. No API calls, no clock (`now` is
 * passed in), so every rule is unit-tested without a server.
 */
import { Ipv4Net, tryParseIpv4 } from '../../util/ipv4';
import { Ipv6Net, tryParseIpv6 } from '../../util/ipv6';
import { isMac } from '../../util/mac';
import { isJsonObject, fieldCI } from '../../util/go-json';
import type { Lease, LeaseAttrs } from '../lease';
import type { AnnotationKeys } from './annotations';
import { NamedError } from '../../util/errors';
import { quoteForLog } from '../../util/text';

/** The parts of a core/v1 Node flanneld uses (structurally a client-node V1Node). */
/** One entry of a Node's metadata.managedFields: who last set which fields (server-side field management). */
export interface ManagedFieldsEntry {
  manager?: string;
  fieldsV1?: unknown;
}

export interface KubeNode {
  metadata?: {
    name?: string;
    resourceVersion?: string;
    creationTimestamp?: Date | string | null;
    annotations?: Record<string, string> | null;
    managedFields?: ManagedFieldsEntry[] | null;
  };
  spec?: { podCIDR?: string; podCIDRs?: string[] | null };
}

export interface Families {
  ipv4: boolean;
  ipv6: boolean;
}

/** A Node that cannot be used; `message` is upstream's text where it has one. */
export class NodeLeaseError extends NamedError {}

export function nodeName(node: KubeNode): string {
  return node.metadata?.name ?? '';
}

/** Annotations as a map; a node without any is an empty map (docs/compatibility.md §12: upstream panics). */
export function annotationsOf(node: KubeNode): Record<string, string> {
  return node.metadata?.annotations ?? {};
}

/** The gate of docs/compatibility.md §11.6: flanneld runs on the node (annotation kube-subnet-manager exactly "true"). */
export function isFlannelNode(node: KubeNode, keys: AnnotationKeys): boolean {
  return annotationsOf(node)[keys.subnetKubeManaged] === 'true';
}

function parseCidr(s: string): Ipv4Net | Ipv6Net {
  const n = Ipv4Net.tryParse(s) ?? Ipv6Net.tryParse(s);
  if (!n) throw new NodeLeaseError(`invalid CIDR address: ${quoteForLog(s)}`);
  return n;
}

/** The node's pod CIDRs: `podCIDRs` when set (at most two), else `podCIDR`. */
function podCidrs(node: KubeNode, who: string): Array<Ipv4Net | Ipv6Net> {
  const list = node.spec?.podCIDRs ?? [];
  if (list.length === 0) return [parseCidr(node.spec?.podCIDR ?? '')];
  if (list.length > 2) throw new NodeLeaseError(`node "${who}" pod cidrs should be IPv4/IPv6 only or dualstack`);
  return list.map(parseCidr);
}

/**
 * Raw backend data from an annotation: undefined for none or `null`; it must
 * be JSON (upstream passes it on unchecked and fails later, per backend).
 */
function backendDataOf(text: string | undefined, key: string): string | undefined {
  if (text === undefined || text === '' || text === 'null') return undefined;
  try {
    JSON.parse(text);
  } catch {
    throw new NodeLeaseError(`annotation ${key} is not JSON: ${quoteForLog(JSON.stringify(text))}`);
  }
  return text;
}

/**
 * A peer Node as a lease (docs/compatibility.md §11.6 nodeToLease): public-ip must be an
 * IPv4 literal, the CIDR is the first IPv4 entry of podCIDRs (or podCIDR);
 * IPv6 likewise when enabled. Throws NodeLeaseError with upstream's text.
 */
export function nodeToLease(node: KubeNode, families: Families, keys: AnnotationKeys): Lease {
  const name = nodeName(node);
  const a = annotationsOf(node);
  let subnet: Ipv4Net | undefined;
  let ipv6Subnet: Ipv6Net | undefined;
  let publicIp = 0;
  let publicIpv6: bigint | undefined;
  // Parsed once, and only when a family needs them (a bad public-ip is reported first, as upstream).
  let parsedCidrs: Array<Ipv4Net | Ipv6Net> | undefined;
  const cidrs = () => (parsedCidrs ??= podCidrs(node, name));
  if (families.ipv4) {
    const ip = a[keys.publicIp];
    const parsed = ip === undefined ? undefined : tryParseIpv4(ip);
    if (parsed === undefined) {
      throw new NodeLeaseError(ip === undefined || ip === '' || !/^[\d.]+$/.test(ip) ? `invalid IP address format: ${quoteForLog(JSON.stringify(ip ?? ''))} in ${keys.publicIp}` : `invalid IPv4 address format: ${quoteForLog(ip)} in ${keys.publicIp}`);
    }
    publicIp = parsed;
    subnet = cidrs().find((c): c is Ipv4Net => c instanceof Ipv4Net);
    if (!subnet) throw new NodeLeaseError('missing IPv4 address on n.Spec.PodCIDRs');
  }
  if (families.ipv6) {
    const ip = a[keys.publicIpv6];
    publicIpv6 = ip === undefined ? undefined : tryParseIpv6(ip);
    if (publicIpv6 === undefined) throw new NodeLeaseError(`invalid IP address format: ${quoteForLog(JSON.stringify(ip ?? ''))} in ${keys.publicIpv6}`);
    ipv6Subnet = cidrs().find((c): c is Ipv6Net => c instanceof Ipv6Net);
    if (!ipv6Subnet) throw new NodeLeaseError('missing IPv6 address on n.Spec.PodCIDRs');
  }
  const attrs: LeaseAttrs = {
    publicIp,
    publicIpv6,
    backendType: a[keys.backendType] ?? '',
    backendData: families.ipv4 ? backendDataOf(a[keys.backendData], keys.backendData) : undefined,
    backendV6Data: families.ipv6 ? backendDataOf(a[keys.backendV6Data], keys.backendV6Data) : undefined,
  };
  // An IPv6-only cluster's lease has the IPv4 subnet 0.0.0.0/0, as upstream's zero IP4Net.
  return { subnet: subnet?.canonical() ?? new Ipv4Net(0, 0), ipv6Subnet: ipv6Subnet?.canonical(), attrs, expiration: undefined };
}

/** The own node's subnets (docs/compatibility.md §11.5 steps 2-3): podCIDR must be set; the last IPv4 and last IPv6 entry win. */
export function ownNodeSubnets(node: KubeNode): { subnet: Ipv4Net | undefined; ipv6Subnet: Ipv6Net | undefined } {
  const name = nodeName(node);
  if (!node.spec?.podCIDR) {
    throw new NodeLeaseError(
      `node "${name}" pod cidr not assigned (spec.podCIDR is empty: start kube-controller-manager with --allocate-node-cidrs=true and --cluster-cidr=<Network>, e.g. kubeadm init --pod-network-cidr=10.244.0.0/16)`,
    );
  }
  let subnet: Ipv4Net | undefined;
  let ipv6Subnet: Ipv6Net | undefined;
  for (const c of podCidrs(node, name)) {
    if (c instanceof Ipv4Net) subnet = c;
    else ipv6Subnet = c;
  }
  return { subnet, ipv6Subnet };
}

/** TestContainsCIDR: `outer` contains `inner` (prefix no longer, and the address inside). */
export function containsCidr(outer: Ipv4Net | Ipv6Net, inner: Ipv4Net | Ipv6Net): boolean {
  if (outer instanceof Ipv4Net && inner instanceof Ipv4Net) return outer.prefixLen <= inner.prefixLen && outer.contains(inner.ip);
  if (outer instanceof Ipv6Net && inner instanceof Ipv6Net) return outer.prefixLen <= inner.prefixLen && outer.contains(inner.ip);
  return false;
}

/**
 * The containment check of docs/compatibility.md §11.5 step 6, done before anything is published
 * (docs/compatibility.md §12: upstream patches first, so a misconfigured
 * node advertises itself and then exits).
 */
export function checkOwnSubnets(
  name: string,
  own: { subnet: Ipv4Net | undefined; ipv6Subnet: Ipv6Net | undefined },
  families: Families,
  network: Ipv4Net | undefined,
  ipv6Network: Ipv6Net | undefined,
  netConfPath: string,
): void {
  if (families.ipv4 && own.subnet && !(network && containsCidr(network, own.subnet))) {
    throw new NodeLeaseError(
      `subnet "${network ? network.toString() : '0.0.0.0/0'}" specified in the flannel net config doesn't contain "${own.subnet.toString()}" PodCIDR of the "${name}" node (make Network in ${netConfPath} the cluster CIDR given to kube-controller-manager --cluster-cidr)`,
    );
  }
  if (families.ipv6 && own.ipv6Subnet && !(ipv6Network && containsCidr(ipv6Network, own.ipv6Subnet))) {
    throw new NodeLeaseError(
      `subnet "${ipv6Network ? ipv6Network.toString() : '::/0'}" specified in the flannel net config doesn't contain "${own.ipv6Subnet.toString()}" IPv6 PodCIDR of the "${name}" node (make IPv6Network in ${netConfPath} the cluster's IPv6 cluster CIDR)`,
    );
  }
}

/** What the backend publishes about this node (the attrs it passed to acquireLease). */
export interface OwnPublication {
  backendType: string;
  /** Raw JSON; undefined encodes as `null` (docs/compatibility.md §11.5 step 4). */
  backendData: string | undefined;
  /** Set when the backend has an IPv6 part (vxlan v6 device, host-gw v6 address). */
  backendV6Data?: string | undefined;
  publicIp: string;
  publicIpv6?: string | undefined;
}

export interface AnnotationPatch {
  /** Whether upstream sends a PATCH at all (it may be `{}`). */
  needed: boolean;
  /** The strategic-merge-patch body: only changed keys, sorted, compact. */
  body: string;
  /** Set when public-ip-overwrite replaces the published address. */
  overrides: Array<{ key: string; value: string }>;
}

/**
 * The own node's annotation patch (docs/compatibility.md §11.5 step 5): needed when
 * backend-data, backend-type, public-ip or kube-subnet-manager differ (or an
 * overwrite differs from the local address); the body is the two-way diff of
 * the annotations, keys sorted. Nothing is ever deleted.
 */
export function ownAnnotationPatch(node: KubeNode, pub: OwnPublication, keys: AnnotationKeys): AnnotationPatch {
  const cur = annotationsOf(node);
  const data = pub.backendData ?? 'null';
  const overwrite = cur[keys.publicIpOverwrite] ?? '';
  let needed = cur[keys.backendData] !== data || cur[keys.backendType] !== pub.backendType || cur[keys.publicIp] !== pub.publicIp || cur[keys.subnetKubeManaged] !== 'true' || (overwrite !== '' && overwrite !== pub.publicIp);
  const hasV6 = pub.publicIpv6 !== undefined;
  const data6 = pub.backendV6Data ?? 'null';
  const overwrite6 = cur[keys.publicIpv6Overwrite] ?? '';
  if (hasV6) {
    needed ||= cur[keys.backendV6Data] !== data6 || cur[keys.publicIpv6] !== pub.publicIpv6 || (overwrite6 !== '' && overwrite6 !== pub.publicIpv6);
  }
  const next: Record<string, string> = { ...cur };
  const overrides: AnnotationPatch['overrides'] = [];
  next[keys.backendType] = pub.backendType;
  // The v4 part is written unless a vxlan backend has no v4 device (data null): always for udp/host-gw.
  if (!(pub.backendType === 'vxlan' && pub.backendData === undefined)) {
    next[keys.backendData] = data;
    next[keys.publicIp] = overwrite !== '' ? overwrite : pub.publicIp;
    if (overwrite !== '') overrides.push({ key: keys.publicIpOverwrite, value: overwrite });
  }
  if (hasV6) {
    next[keys.backendV6Data] = data6;
    next[keys.publicIpv6] = overwrite6 !== '' ? overwrite6 : pub.publicIpv6!;
    if (overwrite6 !== '') overrides.push({ key: keys.publicIpv6Overwrite, value: overwrite6 });
  }
  next[keys.subnetKubeManaged] = 'true';
  const changed = Object.keys(next)
    .filter((k) => cur[k] !== next[k])
    .sort();
  const body = changed.length === 0 ? '{}' : `{"metadata":{"annotations":{${changed.map((k) => `${JSON.stringify(k)}:${JSON.stringify(next[k])}`).join(',')}}}}`;
  return { needed, body, overrides };
}

/** RFC 3339 UTC, whole seconds, as Go's metav1.Time marshals. */
export function kubeTime(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The condition patch's body (docs/compatibility.md §11.3): NetworkUnavailable=False, field order as upstream's. */
export function networkAvailableConditionPatch(now: Date): string {
  const t = kubeTime(now);
  return `{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","lastHeartbeatTime":"${t}","lastTransitionTime":"${t}","reason":"FlannelIsUp","message":"Flannel is running on this node"}]}}`;
}

/**
 * The VtepMAC stored in the own node's backend-data annotation (docs/compatibility.md §11.8),
 * read as JSON (docs/compatibility.md §12: upstream splits the string
 * and looks under the raw, unnormalised prefix, so custom prefixes never
 * restored). Undefined when there is none or it is not a MAC.
 */
export function storedVtepMac(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  const mac = isJsonObject(data) ? fieldCI(data, 'VtepMAC') : undefined;
  return typeof mac === 'string' && isMac(mac) ? mac.toLowerCase() : undefined;
}

/** `-public-ip(v6)` replaced by the node's node-public-ip(v6) annotations (docs/compatibility.md §11.1 step 7). */
export function publicIpHints(node: KubeNode, keys: AnnotationKeys): { publicIp: string | undefined; publicIpv6: string | undefined } {
  const a = annotationsOf(node);
  const v4 = a[keys.nodePublicIp];
  const v6 = a[keys.nodePublicIpv6];
  return { publicIp: v4 ? v4 : undefined, publicIpv6: v6 ? v6 : undefined };
}

/** The annotation keys a patch body sets (ownAnnotationPatch's body). */
export function patchedAnnotationKeys(body: string): string[] {
  const annotations = (JSON.parse(body) as { metadata?: { annotations?: Record<string, unknown> } }).metadata?.annotations;
  return annotations ? Object.keys(annotations).sort() : [];
}

/**
 * The managers (metadata.managedFields) other than `self` that own one of
 * `keys` among the annotations: who changed them. Empty when the server
 * keeps no field management (it then is not known).
 */
export function annotationManagers(node: KubeNode, keys: readonly string[], self: string): string[] {
  const out = new Set<string>();
  for (const entry of node.metadata?.managedFields ?? []) {
    if (!entry.manager || entry.manager === self) continue;
    const fields = entry.fieldsV1 as Record<string, Record<string, Record<string, unknown>> | undefined> | undefined;
    const annotations = fields?.['f:metadata']?.['f:annotations'];
    if (annotations && keys.some((k) => `f:${k}` in annotations)) out.add(entry.manager);
  }
  return [...out].sort();
}
