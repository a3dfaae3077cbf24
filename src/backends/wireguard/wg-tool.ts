/**
 * WireGuard's own configuration tool, `wg` from wireguard-tools, as the one
 * way flannel-ts reads and writes a WireGuard device: for the kernel's
 * device it speaks generic netlink, for wireguard-go the cross-platform
 * configuration protocol on /var/run/wireguard/<device>.sock
 * (wireguard-tools src/ipc.c picks by whether that socket exists). So both
 * implementations are configured by one maintained tool, the same way.
 *
 * Keys never appear in an argument list (other users can read those in
 * /proc): private key and preshared key travel on stdin, in the
 * configuration `wg syncconf` reads (wg(8), CONFIGURATION FILE FORMAT).
 * Nothing here logs a private key or a preshared key.
 */
import { CommandError, type CommandRunner, describeCommand, runChecked } from '../../util/command';
import { NamedError } from '../../util/errors';

/** A peer as `wg show <device> dump` lists it (wg(8), "dump"). */
export interface WgPeerState {
  publicKey: string;
  /** The preshared key, or undefined for none. */
  presharedKey: string | undefined;
  /** "1.2.3.4:51820" or "[2001:db8::1]:51820", or undefined before any is known. */
  endpoint: string | undefined;
  /** CIDRs, as wg prints them. */
  allowedIps: string[];
  /** Seconds since the epoch of the last handshake; 0 = never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
}

/** A device as `wg show <device> dump` lists it; the private key is left out on purpose. */
export interface WgDeviceState {
  /** The device's public key (from its private key), or undefined when it has none. */
  publicKey: string | undefined;
  listenPort: number;
  peers: WgPeerState[];
}

/** What a device should be: `wg syncconf` makes it so (peers not listed are removed). */
export interface WgDeviceConfig {
  privateKey: string;
  listenPort: number;
  peers: WgPeerConfig[];
}

export interface WgPeerConfig {
  publicKey: string;
  presharedKey: string | undefined;
  endpoint: string;
  allowedIps: string[];
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
}

export class WgDumpError extends NamedError {}
/** `wg syncconf` refused a configuration (the message has no key in it). */
export class WgConfigureError extends NamedError {}

/** `text` with every run of 40+ base64 characters (a WireGuard key is 44) replaced by "<key>". */
export function redactKeys(text: string): string {
  return text.replace(/[A-Za-z0-9+/]{40,}={0,2}/g, '<key>');
}

const none = (v: string): string | undefined => (v === '(none)' || v === '' ? undefined : v);

/** Parses `wg show <device> dump`: the interface line, then one line per peer, fields separated by tabs. */
export function parseWgDump(text: string): WgDeviceState {
  const lines = text.split('\n').filter((l) => l !== '');
  const head = lines.shift()?.split('\t');
  if (!head || head.length < 4) throw new WgDumpError(`unexpected output of wg show dump: ${lines.length === 0 ? 'nothing' : 'a short first line'}`);
  const peers = lines.map((line, i): WgPeerState => {
    const f = line.split('\t');
    if (f.length < 8) throw new WgDumpError(`unexpected output of wg show dump: peer line ${i + 1} has ${f.length} fields, not 8`);
    const allowed = none(f[3]!);
    return {
      publicKey: f[0]!,
      presharedKey: none(f[1]!),
      endpoint: none(f[2]!),
      allowedIps: allowed ? allowed.split(',') : [],
      latestHandshake: Number(f[4]),
      rxBytes: Number(f[5]),
      txBytes: Number(f[6]),
      persistentKeepalive: f[7] === 'off' ? 0 : Number(f[7]),
    };
  });
  return { publicKey: none(head[1]!), listenPort: Number(head[2]), peers };
}

/** The configuration text `wg syncconf` reads (wg(8)): [Interface] and one [Peer] section per peer. */
export function renderWgConfig(cfg: WgDeviceConfig): string {
  const out = ['[Interface]', `PrivateKey = ${cfg.privateKey}`, `ListenPort = ${cfg.listenPort}`];
  for (const p of cfg.peers) {
    out.push('', '[Peer]', `PublicKey = ${p.publicKey}`);
    if (p.presharedKey) out.push(`PresharedKey = ${p.presharedKey}`);
    out.push(`Endpoint = ${p.endpoint}`, `AllowedIPs = ${p.allowedIps.join(', ')}`);
    if (p.persistentKeepalive > 0) out.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return out.join('\n') + '\n';
}

/** Whether wg's answer means the device does not exist (or is no WireGuard device). */
function noSuchDevice(stderr: string): boolean {
  return /No such device|Unable to access interface|Protocol not supported|Operation not supported/i.test(stderr);
}

/**
 * `wg` with `input` on a pipe it can open as /dev/stdin: the runner's stdin
 * is a socket (Node's child stdio), which open(2) of /proc/self/fd/0
 * refuses (ENXIO), so a `cat |` stage hands it over as a pipe.
 */
const WG_FROM_PIPE = 'cat | exec wg "$@"';

export class WgTool {
  constructor(private readonly runner: CommandRunner) {}

  private withInputFile(args: readonly string[], input: string) {
    return this.runner.run('sh', ['-c', WG_FROM_PIPE, 'sh', ...args], input);
  }

  /** A new private key (`wg genkey`). */
  async genkey(): Promise<string> {
    return (await runChecked(this.runner, 'wg', ['genkey'])).trim();
  }

  /** The public key of a private key (`wg pubkey`, the key on stdin). */
  async pubkey(privateKey: string): Promise<string> {
    return (await runChecked(this.runner, 'wg', ['pubkey'], privateKey + '\n')).trim();
  }

  /** The device's state, or undefined when there is no WireGuard device of that name. */
  async show(device: string): Promise<WgDeviceState | undefined> {
    const args = ['show', device, 'dump'];
    const r = await this.runner.run('wg', args);
    if (r.code !== 0) {
      if (noSuchDevice(r.stderr)) return undefined;
      throw new CommandError(describeCommand('wg', args), r.code, r.stderr);
    }
    return parseWgDump(r.stdout);
  }

  /**
   * Makes the device's keys, port and peers exactly `cfg` (`wg syncconf
   * <device> /dev/stdin`). wg quotes a line it cannot parse in its error, so
   * anything shaped like a key is blanked out of the message.
   */
  async syncconf(device: string, cfg: WgDeviceConfig): Promise<void> {
    const r = await this.withInputFile(['syncconf', device, '/dev/stdin'], renderWgConfig(cfg));
    if (r.code !== 0) throw new WgConfigureError(`wg syncconf ${device}: exit status ${r.code}: ${redactKeys(r.stderr.trim()) || '(no output)'}`);
  }

  /** Sets the device's private key and listen port and leaves its peers as they are (`wg set`, the key on stdin). */
  async setKey(device: string, privateKey: string, listenPort: number): Promise<void> {
    const r = await this.withInputFile(['set', device, 'listen-port', String(listenPort), 'private-key', '/dev/stdin'], privateKey + '\n');
    if (r.code !== 0) throw new WgConfigureError(`wg set ${device}: exit status ${r.code}: ${redactKeys(r.stderr.trim()) || '(no output)'}`);
  }

  /** The version line of `wg --version`, e.g. "wireguard-tools v1.0.20210914". */
  async version(): Promise<string> {
    return (await runChecked(this.runner, 'wg', ['--version'])).split('\n')[0]!.replace(/ - https?:\/\/\S+$/, '').trim();
  }
}
