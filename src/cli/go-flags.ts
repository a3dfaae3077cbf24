/**
 * A command-line parser with Go's `flag` package semantics (docs/compatibility.md §1.3),
 * which upstream flanneld uses and operators' unit files rely on:
 *
 *  - `-name`, `--name`, `-name=value`, `-name value` (not for bools);
 *  - a bool is set by `-name` or `-name=<bool>`; `-name false` does NOT turn
 *    it off (the `false` is the first non-flag argument);
 *  - parsing stops at the first non-flag argument, a lone `-`, or `--`;
 *  - repeatable flags append each occurrence;
 *  - ints accept Go's base prefixes (0x, 0o, 0b, leading 0 = octal) and `_`
 *    digit separators; bools accept 1 t T TRUE true True 0 f F FALSE false False;
 *  - `-h` / `-help` ask for usage.
 * Error texts are Go's.
 */
import { NamedError } from '../util/errors';

export type FlagKind = 'string' | 'stringList' | 'bool' | 'int';
export type FlagValue = string | string[] | boolean | number;

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  default: FlagValue;
  usage: string;
  /** For `int` flags: Go's base-0 parsing (default) or base 10 only (klog's -v). */
  base10Only?: boolean;
}

export interface ParsedFlags {
  values: Map<string, FlagValue>;
  /** Flags given on the command line (environment variables do not override these). */
  setOnCommandLine: Set<string>;
  /** Arguments after the flags. */
  rest: string[];
}

export class FlagParseError extends NamedError {}

/** Thrown for -h / -help: print usage and exit successfully. */
export class HelpRequested extends NamedError {
  constructor() {
    super('help requested');
  }
}

/** strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/** strconv's underscoreOK: underscores only between digits or after a base prefix. */
function underscoreOK(s0: string): boolean {
  let s = s0;
  let saw = '^';
  let i = 0;
  if (s.length >= 1 && (s[0] === '-' || s[0] === '+')) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === '0' && 'box'.includes(s[1]!.toLowerCase())) {
    i = 2;
    saw = '0';
    hex = s[1]!.toLowerCase() === 'x';
  }
  for (; i < s.length; i++) {
    const c = s[i]!;
    const lc = c.toLowerCase();
    if ((c >= '0' && c <= '9') || (hex && lc >= 'a' && lc <= 'f')) {
      saw = '0';
      continue;
    }
    if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
      continue;
    }
    if (saw === '_') return false;
    saw = '!';
  }
  return saw !== '_';
}

/**
 * strconv.ParseInt(s, 0, 64) (or base 10 when base10Only): returns the value,
 * or 'syntax' / 'range' like Go's ErrSyntax / ErrRange.
 */
export function parseGoInt(s: string, base10Only = false): number | 'syntax' | 'range' {
  if (s.length === 0) return 'syntax';
  let body = s;
  let negative = false;
  if (body[0] === '+' || body[0] === '-') {
    negative = body[0] === '-';
    body = body.slice(1);
  }
  let base = 10;
  let digits = body;
  if (!base10Only) {
    if (body.length >= 2 && body[0] === '0') {
      const p = body[1]!.toLowerCase();
      if (p === 'x') [base, digits] = [16, body.slice(2)];
      else if (p === 'b') [base, digits] = [2, body.slice(2)];
      else if (p === 'o') [base, digits] = [8, body.slice(2)];
      else [base, digits] = [8, body.slice(1)];
    }
    if (!underscoreOK(s)) return 'syntax';
    digits = digits.replace(/_/g, '');
  }
  if (digits.length === 0) return 'syntax';
  const valid = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ }[base]!;
  if (!valid.test(digits)) return 'syntax';
  let v = 0n;
  for (const c of digits) v = v * BigInt(base) + BigInt(parseInt(c, 16));
  if (negative) v = -v;
  if (v > (1n << 63n) - 1n || v < -(1n << 63n)) return 'range';
  return Number(v);
}

/** Sets one flag from text, as flag.Value.Set does; returns an error text or undefined. */
export function setFlagValue(spec: FlagSpec, text: string, values: Map<string, FlagValue>): string | undefined {
  switch (spec.kind) {
    case 'string':
      values.set(spec.name, text);
      return undefined;
    case 'stringList': {
      const current = values.get(spec.name);
      values.set(spec.name, [...(Array.isArray(current) ? current : []), text]);
      return undefined;
    }
    case 'bool': {
      const b = parseGoBool(text);
      if (b === undefined) return 'parse error';
      values.set(spec.name, b);
      return undefined;
    }
    case 'int': {
      const n = parseGoInt(text, spec.base10Only);
      if (n === 'syntax') return 'parse error';
      if (n === 'range') return 'value out of range';
      values.set(spec.name, n);
      return undefined;
    }
  }
}

/** Parses `argv` (without the program name) against `specs`. */
export function parseGoFlags(argv: readonly string[], specs: readonly FlagSpec[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, FlagValue>(specs.map((s) => [s.name, Array.isArray(s.default) ? [...s.default] : s.default]));
  // A repeatable flag given on the command line starts from empty, not from its default.
  const listsStarted = new Set<string>();
  const setOnCommandLine = new Set<string>();
  const args = [...argv];
  while (args.length > 0) {
    const s = args[0]!;
    if (s.length < 2 || s[0] !== '-') break;
    let minuses = 1;
    if (s[1] === '-') {
      minuses = 2;
      if (s.length === 2) {
        args.shift();
        break;
      }
    }
    let name = s.slice(minuses);
    if (name.length === 0 || name[0] === '-' || name[0] === '=') throw new FlagParseError(`bad flag syntax: ${s}`);
    args.shift();
    let hasValue = false;
    let value = '';
    const eq = name.indexOf('=', 1);
    if (eq > 0) {
      value = name.slice(eq + 1);
      hasValue = true;
      name = name.slice(0, eq);
    }
    const spec = byName.get(name);
    if (!spec) {
      if (name === 'help' || name === 'h') throw new HelpRequested();
      throw new FlagParseError(`flag provided but not defined: -${name}`);
    }
    if (spec.kind === 'stringList' && !listsStarted.has(name)) {
      values.set(name, []);
      listsStarted.add(name);
    }
    if (spec.kind === 'bool') {
      if (hasValue) {
        if (setFlagValue(spec, value, values) !== undefined) {
          throw new FlagParseError(`invalid boolean value "${value}" for -${name}: parse error`);
        }
      } else {
        values.set(name, true);
      }
    } else {
      if (!hasValue && args.length > 0) {
        hasValue = true;
        value = args.shift()!;
      }
      if (!hasValue) throw new FlagParseError(`flag needs an argument: -${name}`);
      const err = setFlagValue(spec, value, values);
      if (err !== undefined) throw new FlagParseError(`invalid value "${value}" for flag -${name}: ${err}`);
    }
    setOnCommandLine.add(name);
  }
  return { values, setOnCommandLine, rest: args };
}

/** flag.PrintDefaults' format: "  -name type\n    \tusage (default ...)". */
export function formatDefaults(specs: readonly FlagSpec[]): string {
  const lines: string[] = [];
  for (const s of [...specs].sort((a, b) => a.name.localeCompare(b.name))) {
    const typeName = s.kind === 'bool' ? '' : s.kind === 'int' ? ' int' : ' string';
    lines.push(`  -${s.name}${typeName}`);
    let usage = `    \t${s.usage.replace(/\n/g, '\n    \t')}`;
    if (s.kind === 'string' && s.default !== '') usage += ` (default "${String(s.default)}")`;
    if (s.kind === 'int' && s.default !== 0) usage += ` (default ${String(s.default)})`;
    if (s.kind === 'bool' && s.default === true) usage += ' (default true)';
    lines.push(usage);
  }
  return lines.join('\n') + '\n';
}
