/** MAC addresses as lower-case "aa:bb:cc:dd:ee:ff" text. */
import { randomBytes } from 'node:crypto';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function isMac(s: string): boolean {
  return MAC_RE.test(s.toLowerCase());
}

/**
 * A random locally administered unicast MAC (upstream's pkg/mac: the first
 * octet has bit 0 cleared (unicast) and bit 1 set (locally administered)).
 */
export function randomLocalMac(random: (n: number) => Buffer = randomBytes): string {
  const b = random(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
