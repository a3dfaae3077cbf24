/**
 * `install-conf <src> <dest>`: the CNI config installer the kube-flannel
 * manifest runs from the flannel image (docs/compatibility.md §11.9, upstream's
 * cmd/install_conf): an atomic copy through a temporary file in the target
 * directory, with the source's mode, so the kubelet never reads half a file.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorText } from '../util/errors';

/** Copies `src` to `dest` atomically; throws with the reason. */
export function installConf(src: string, dest: string): void {
  const mode = fs.statSync(src).mode & 0o7777;
  const data = fs.readFileSync(src);
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.tmp${randomBytes(4).readUInt32BE(0)}`);
  try {
    fs.writeFileSync(tmp, data, { mode });
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** The command; returns the exit code. */
export function installConfMain(argv0: string, args: readonly string[], stderr: (s: string) => void): number {
  if (args.length !== 2) {
    stderr(`usage: ${argv0} <src> <dest>\n`);
    return 1;
  }
  try {
    installConf(args[0]!, args[1]!);
    return 0;
  } catch (e) {
    stderr(`error installing "${args[0]}": ${errorText(e)}\n`);
    return 1;
  }
}
