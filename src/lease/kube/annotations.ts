/**
 * The Node annotation keys flanneld reads and writes in kube mode
 * (docs/compatibility.md §11.4): `-kube-annotation-prefix` normalised as upstream does, then a
 * fixed name appended.
 *
 * Normalisation, in upstream's order: more than one "/" is an error; no "/"
 * gets one appended; a prefix ending in neither "/" nor "-" then gets "-".
 * The result must look like `fqdn/` or `fqdn/name-`.
 *
 * Fixed on purpose (docs/compatibility.md §12, kube mode): upstream's regex is anchored at
 * the end only, so `Foo.example.com` passes and yields upper-case keys the
 * API server rejects on every PATCH (a 30 s timeout at startup). We anchor
 * both ends and say why at once.
 */
import { NamedError } from '../../util/errors';

export class AnnotationPrefixError extends NamedError {}

export interface AnnotationKeys {
  /** `<prefix>kube-subnet-manager`: "true" on every node flanneld runs on; the gate for peers (docs/compatibility.md §11.6). */
  subnetKubeManaged: string;
  backendType: string;
  backendData: string;
  backendV6Data: string;
  publicIp: string;
  publicIpv6: string;
  /** Operator-set: replaces what is published in public-ip(v6) (docs/compatibility.md §11.5). */
  publicIpOverwrite: string;
  publicIpv6Overwrite: string;
  /** Operator-set: replaces -public-ip(v6) at startup (docs/compatibility.md §11.1 step 7). */
  nodePublicIp: string;
  nodePublicIpv6: string;
}

export const DEFAULT_ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';

// upstream's pattern (annotations.go) with a start anchor added.
const PREFIX_RE = /^(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/;

/** The normalised prefix: `flannel.alpha.coreos.com` → `flannel.alpha.coreos.com/`, `org.com/9` → `org.com/9-`. */
export function normalizeAnnotationPrefix(prefix: string): string {
  const slashes = prefix.split('/').length - 1;
  if (slashes > 1) throw new AnnotationPrefixError('subnet/kube: prefix can contain at most single slash');
  let p = slashes === 0 ? `${prefix}/` : prefix;
  if (!p.endsWith('/') && !p.endsWith('-')) p += '-';
  if (!PREFIX_RE.test(p)) {
    throw new AnnotationPrefixError(
      `subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]* (got ${JSON.stringify(prefix)}; lower-case letters, digits, '-' and '_' only, with at least one dot before the slash, e.g. ${DEFAULT_ANNOTATION_PREFIX})`,
    );
  }
  return p;
}

export function annotationKeys(prefix: string): AnnotationKeys {
  const p = normalizeAnnotationPrefix(prefix);
  return {
    subnetKubeManaged: `${p}kube-subnet-manager`,
    backendType: `${p}backend-type`,
    backendData: `${p}backend-data`,
    backendV6Data: `${p}backend-v6-data`,
    publicIp: `${p}public-ip`,
    publicIpv6: `${p}public-ipv6`,
    publicIpOverwrite: `${p}public-ip-overwrite`,
    publicIpv6Overwrite: `${p}public-ipv6-overwrite`,
    nodePublicIp: `${p}node-public-ip`,
    nodePublicIpv6: `${p}node-public-ipv6`,
  };
}
