/**
 * The daemon (compat §0 steps 6-22). Wired up by issue B2.
 */
import type { FlannelConfig } from '../cli/config';
import type { Logger } from '../log';

export async function runDaemon(_cfg: FlannelConfig, log: Logger): Promise<number> {
  log.error({}, 'the flanneld daemon is not part of this build yet');
  return 1;
}
