/**
 * Text from outside (an etcd key or value, a Node annotation) can be large:
 * etcd accepts values up to 1.5 MiB, an annotation up to 256 KiB. Log lines
 * and errors quote such text through quoteForLog, which keeps its start and
 * says how much was left out.
 */

/** The text, cut to `max` characters with the length of the rest noted. */
export function quoteForLog(text: string, max = 200): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}… (${text.length - max} more characters)`;
}
