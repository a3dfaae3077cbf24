/**
 * Turns the datapath's unknown-source reports into log lines: the first
 * datagram dropped from each address is logged once, with the hint to turn
 * the check off when peers legitimately send from another address.
 */
import type { Logger } from '../../log';

export interface UnknownSourceFeed {
  /** Addresses newly rejected since the last call (the datapath reports each once). */
  drainUnknownSources(): string[];
}

/** Remembered addresses, so a datapath restart does not log them again. */
const MAX_REMEMBERED = 4096;

export class UnknownSourceReporter {
  private readonly logged = new Set<string>();

  constructor(private readonly feed: UnknownSourceFeed, private readonly log: Logger) {}

  /** Logs the addresses reported since the last poll; returns how many were new. */
  poll(): number {
    let fresh = 0;
    for (const address of this.feed.drainUnknownSources()) {
      if (this.logged.has(address)) continue;
      if (this.logged.size < MAX_REMEMBERED) this.logged.add(address);
      fresh++;
      this.log.warn(
        { source: address, reason: 'unknown_source' },
        `udp backend dropped a datagram from ${address}: it is not the PublicIP of any known peer ` +
          '(further drops from it are only counted). If your nodes send from an address other than ' +
          'their PublicIP (NAT, several addresses), set "SourceCheck": false in the udp Backend config.',
      );
    }
    return fresh;
  }
}
