/**
 * Reading JSON objects the way Go's encoding/json fills a struct, which is
 * how upstream decodes every config (docs/compatibility.md §2.2): keys match field names
 * case-insensitively, unknown keys are ignored, and when several keys match
 * one field the last one in the object wins. Type mismatches are errors with
 * Go-like wording.
 */
import { NamedError } from './errors';

export class JsonFieldError extends NamedError {}

export type JsonObject = Record<string, unknown>;

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value of the key matching `field` case-insensitively (last match wins), or undefined. */
export function fieldCI(obj: JsonObject, field: string): unknown {
  const want = field.toLowerCase();
  let value: unknown;
  for (const [k, v] of Object.entries(obj)) {
    if (k.toLowerCase() === want) value = v;
  }
  return value;
}

function jsonTypeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'object' ? 'object' : typeof v;
}

function mismatch(field: string, v: unknown, goType: string): JsonFieldError {
  const shown = typeof v === 'string' ? 'string' : `${jsonTypeName(v)} ${JSON.stringify(v)}`;
  return new JsonFieldError(`json: cannot unmarshal ${shown} into Go struct field .${field} of type ${goType}`);
}

/**
 * An integer field. JSON null leaves the default, as Go does for a non-pointer
 * field. `goType` is only for the message ("int", "uint").
 */
export function intField(obj: JsonObject, field: string, fallback: number, goType = 'int'): number {
  const v = fieldCI(obj, field);
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || (goType.startsWith('uint') && v < 0)) {
    throw mismatch(field, v, goType);
  }
  return v;
}

export function boolField(obj: JsonObject, field: string, fallback: boolean): boolean {
  const v = fieldCI(obj, field);
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw mismatch(field, v, 'bool');
  return v;
}

export function stringField(obj: JsonObject, field: string, fallback: string): string {
  const v = fieldCI(obj, field);
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string') throw mismatch(field, v, 'string');
  return v;
}

/**
 * A string as Go's encoding/json marshals it (json.Marshal's defaults):
 * like JSON.stringify, but with `<`, `>` and `&` escaped as \u003c, \u003e,
 * \u0026 (HTML-safe) and U+2028, U+2029 as \u2028, \u2029; a lone
 * surrogate (invalid UTF-8 in Go) becomes U+FFFD.
 */
export function goJsonString(s: string): string {
  const wellFormed = s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  // JSON.stringify leaves <, >, &, U+2028 and U+2029 as they are: the HTML escaping is goCompactJson's.
  return goCompactJson(JSON.stringify(wellFormed));
}

/**
 * What Go's json.Marshal writes for a json.RawMessage (encoding/json,
 * compact with HTML escaping): the same text without insignificant white
 * space, with `<`, `>`, `&`, U+2028 and U+2029 inside strings escaped, and
 * every other escape left as written. `raw` must be valid JSON.
 */
export function goCompactJson(raw: string): string {
  JSON.parse(raw); // throws on invalid JSON, as Marshal fails on it
  let out = '';
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (inString) {
      if (c === '\\') {
        out += c + raw[++i]!;
        continue;
      }
      if (c === '"') inString = false;
      out += /[<>&\u2028\u2029]/.test(c) ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') continue;
    if (c === '"') inString = true;
    out += c;
  }
  return out;
}
