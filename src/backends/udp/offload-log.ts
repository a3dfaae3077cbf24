/**
 * Logs the udp datapath's offload state: once at start (what is on, and what
 * the kernel refused), then once for each offload switched off at runtime
 * (native/linux/offload_linux.h), and once when the kernel first refuses a
 * UDP GSO send to some peer (native/core/peer_backoff.h). The datapath itself
 * never logs.
 */
import {
  OFFLOAD_DESCRIPTIONS,
  OFFLOAD_ENV,
  OFFLOAD_SWITCHES,
  type OffloadReport,
  type OffloadSwitchName,
} from '../../forwarder/offload';
import type { Logger } from '../../logging';

export class OffloadReporter {
  private last: OffloadReport | undefined;
  private gsoRefusalLogged = false;

  constructor(private readonly log: Logger) {}

  /** Logs what changed since the last report; returns the number of lines logged. */
  observe(report: OffloadReport | undefined, gsoRefusals = 0): number {
    if (report === undefined) return 0;
    let refusalLines = 0;
    if (gsoRefusals > 0 && !this.gsoRefusalLogged) {
      this.gsoRefusalLogged = true;
      refusalLines = 1;
      this.log.warn(
        { offload: 'gso', refusals: gsoRefusals },
        'the kernel refused a UDP GSO send to a peer (its path MTU is below the segment size, or the ' +
          'underlay device cannot checksum): that peer gets unsegmented sends, GSO is tried again ' +
          'every 10 s; further refusals are only counted (offload_gso_failures).',
      );
    }
    return refusalLines + this.observeSwitches(report);
  }

  private observeSwitches(report: OffloadReport): number {
    const previous = this.last;
    this.last = report;
    let lines = 0;
    if (previous === undefined) {
      const summary = OFFLOAD_SWITCHES.map((s) => `${s} ${report[s].status}`).join(', ');
      this.log.info({ offload: report }, `udp datapath offloads: ${summary}`);
      lines++;
      for (const s of OFFLOAD_SWITCHES) {
        if (report[s].status === 'refused') {
          this.warnOff(s, report, 'the kernel refused it at start');
          lines++;
        }
      }
      return lines;
    }
    for (const s of OFFLOAD_SWITCHES) {
      if (report[s].status === 'failed' && previous[s].status !== 'failed') {
        this.warnOff(s, report, 'the kernel refused it at runtime');
        lines++;
      }
    }
    return lines;
  }

  private warnOff(s: OffloadSwitchName, report: OffloadReport, when: string): void {
    const code = report[s].code ?? 'unknown error';
    this.log.warn(
      { offload: s, status: report[s].status, code },
      `${OFFLOAD_DESCRIPTIONS[s]} is off: ${when} (${code}); traffic continues without it. ` +
        `To keep it off explicitly, set ${OFFLOAD_ENV} or the udp Backend option "Offload".`,
    );
  }
}
