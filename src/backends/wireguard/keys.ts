/**
 * This node's WireGuard private key, kept in a file as upstream's
 * pkg/backend/wireguard/device.go (setupKeys, writePrivateKey) keeps it:
 * WIREGUARD_KEY_FILE, default /run/flannel/wgkey; created once with mode
 * 0400 when missing and reused on every start, so the PublicKey in the lease
 * stays the same across restarts. The text is the key in base64 without a
 * newline, as upstream writes it; a trailing newline (what `wg genkey`
 * prints) is accepted, as Go's base64 decoder ignores it.
 *
 * Unlike upstream's create-then-chmod, the file is written under another name
 * with mode 0400 from the start and renamed into place, so no reader ever
 * sees a readable or half-written key. The key is never logged; errors name
 * the file, not its contents.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { unusableWireguardKey } from '../../lease/peer-identity';
import { NamedError, errorText } from '../../util/errors';
import type { WgTool } from './wg-tool';

export class WireguardKeyError extends NamedError {}

export interface NodeKey {
  privateKey: string;
  publicKey: string;
  /** True when this start generated it. */
  created: boolean;
  /** Set when the file is readable by group or others: the warning to log. */
  looseMode: string | undefined;
}

/** Reads the key in `file`, or generates one there when the file does not exist. */
export async function loadOrCreateNodeKey(file: string, wg: WgTool): Promise<NodeKey> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new WireguardKeyError(`could not read the WireGuard key file ${file}: ${errorText(e)}`, { cause: e });
    const privateKey = await wg.genkey();
    await writeKeyFile(file, privateKey);
    return { privateKey, publicKey: await wg.pubkey(privateKey), created: true, looseMode: undefined };
  }
  const privateKey = text.replace(/[\r\n]+$/, '');
  const bad = unusableWireguardKey(privateKey);
  if (bad) {
    throw new WireguardKeyError(
      `could not parse private key from file ${file}: ${bad}. Restore the node's key, or remove the file to have a new one generated (peers learn the new public key from this node's lease)`,
    );
  }
  const mode = (await fs.stat(file)).mode & 0o777;
  const looseMode = (mode & 0o077) !== 0 ? `the WireGuard key file ${file} is readable by others (mode 0${mode.toString(8)}); chmod 0400 it` : undefined;
  return { privateKey, publicKey: await wg.pubkey(privateKey), created: false, looseMode };
}

/** Writes `key` to `file` with mode 0400 (its folder 0755 when created), atomically. */
async function writeKeyFile(file: string, key: string): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    await fs.rm(tmp, { force: true });
    await fs.writeFile(tmp, key, { mode: 0o400, flag: 'wx' });
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw new WireguardKeyError(`could not write key file ${file}: ${errorText(e)}`, { cause: e });
  }
}
