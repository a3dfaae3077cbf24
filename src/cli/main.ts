/**
 * The `flanneld` command line. In this first build it prints its version and
 * usage; the daemon is wired in by later work (see README).
 */
import { VERSION } from '../version';

const USAGE = `Usage: flanneld [OPTION]...
flannel-ts ${VERSION}: a drop-in replacement for flanneld (etcd v3 mode; udp, vxlan and host-gw backends).

  -version      print the version and exit
  -h, -help     print this help and exit
`;

export function main(argv: readonly string[]): number {
  const arg = argv[0];
  if (arg === '-version' || arg === '--version') {
    // Upstream prints the version to stderr (compat §0 step 2).
    process.stderr.write(`${VERSION}\n`);
    return 0;
  }
  process.stderr.write(USAGE);
  if (arg === '-h' || arg === '--h' || arg === '-help' || arg === '--help') return 0;
  process.stderr.write('\nflanneld: the daemon itself is not part of this build yet.\n');
  return 1;
}
