// The bytes a telemetry signature covers. They must equal Python's
// `json.dumps(value, sort_keys=True)` (default separators, ensure_ascii) for the value Python reads
// back from our JSON, so that the classic Python HMAC-JSON verifier accepts our messages unchanged.
// The value model (docs/telemetry-envelope.md) is chosen so that the text depends on the JS value
// alone: JSON.parse loses Python's int/float distinction, so every number has exactly one form.
import { pythonFloatRepr } from "telemetry/python-float";

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;
export interface JsonObject {
  readonly [key: string]: JsonValue;
}

/** Text in canonical form: what a signature covers, or a wire message. Always ASCII. */
export type CanonicalJson = string & { readonly __brand: "CanonicalJson" };

/** Separators between members and between a key and its value. */
export interface Layout {
  readonly comma: string;
  readonly colon: string;
}

/** Python's default separators: the signed bytes. */
export const PYTHON_LAYOUT: Layout = Object.freeze({ comma: ", ", colon: ": " });
/** No whitespace: the wire, where the spaces would cost bytes and Python's json.loads ignores them. */
export const COMPACT_LAYOUT: Layout = Object.freeze({ comma: ",", colon: ":" });

/**
 * Containers nested in one value, the outermost included. Bounds recursion on the board (a few
 * hundred stack slots) and on the verifier, whatever the input.
 */
export const MAX_DEPTH = 8;

export class CanonicalJsonError extends Error {
  // A field, not an assignment: Error.prototype is frozen on a board.
  override name = "CanonicalJsonError";
  constructor(readonly path: string, readonly problem: string, fix: string) {
    super(`${path} ${problem}: ${fix}`);
  }
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

// `$.readings[2]["air temp"]`: where in the value the problem is.
function formatPath(path: readonly (string | number)[]): string {
  let text = "$";
  for (const step of path) {
    if (typeof step === "number") text += `[${step}]`;
    else if (IDENTIFIER.test(step)) text += `.${step}`;
    else text += `[${JSON.stringify(step)}]`;
  }
  return text;
}

export function isPlainObject(value: unknown): value is JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

// Python orders str keys by code point, JS's default sort by UTF-16 code unit. They disagree only
// where one string has a surrogate (an astral character) and the other U+E000–U+FFFF at the first
// difference, so those units are re-ranked: surrogates above every other BMP unit.
function rank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/** Python's order of str keys (code point order), for well-formed strings. */
export function compareCodePoints(a: string, b: string): number {
  const length = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

/** An object's keys in Python's sort_keys order. */
export function sortedKeys(object: JsonObject): string[] {
  const keys = Object.keys(object);
  // A received message arrives sorted; checking is several times cheaper than sorting.
  for (let i = 1; i < keys.length; i++) if (compareCodePoints(keys[i - 1]!, keys[i]!) > 0) return keys.sort(compareCodePoints);
  return keys;
}

// Printable ASCII except `"` and `\`: copied as they are.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const HEX_DIGITS = "0123456789abcdef";

// Python's ensure_ascii escapes (Modules/_json.c, ascii_escape_unichar): short forms for these,
// lowercase \uXXXX for every other unit outside printable ASCII (DEL included).
function escapeUnit(unit: number): string {
  switch (unit) {
    case 0x22: return "\\\"";
    case 0x5c: return "\\\\";
    case 0x08: return "\\b";
    case 0x0c: return "\\f";
    case 0x0a: return "\\n";
    case 0x0d: return "\\r";
    case 0x09: return "\\t";
    default:
      return "\\u" + HEX_DIGITS[(unit >> 12) & 15] + HEX_DIGITS[(unit >> 8) & 15] + HEX_DIGITS[(unit >> 4) & 15] + HEX_DIGITS[unit & 15];
  }
}

function unpairedSurrogate(path: readonly (string | number)[], index: number): CanonicalJsonError {
  return new CanonicalJsonError(formatPath(path), `holds an unpaired surrogate at index ${index}`,
    "strings must be well-formed Unicode (other consumers cannot encode it as UTF-8); fix or drop the text");
}

/** A string as Python's json.dumps writes it with ensure_ascii. */
export function quoteString(text: string, path: readonly (string | number)[]): string {
  if (PLAIN.test(text)) return "\"" + text + "\"";
  let out = "\"";
  let copied = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0x20 && unit <= 0x7e && unit !== 0x22 && unit !== 0x5c) continue;
    out += text.slice(copied, i) + escapeUnit(unit);
    if (unit >= 0xd800 && unit <= 0xdfff) {
      const low = text.charCodeAt(i + 1);
      // NaN past the end fails the range test too.
      if (unit >= 0xdc00 || !(low >= 0xdc00 && low <= 0xdfff)) throw unpairedSurrogate(path, i);
      out += escapeUnit(low);
      i++;
    }
    copied = i + 1;
  }
  return out + text.slice(copied) + "\"";
}

/**
 * A number in the value model: a safe integer (|n| ≤ 2^53 − 1, −0 included) is written as a
 * Python int, any other finite number as a Python float. NaN and ±Infinity have no JSON form.
 */
export function formatNumber(value: number, path: readonly (string | number)[]): string {
  // String(-0) is "0": Python reads that back as the int 0.
  if (Number.isSafeInteger(value)) return String(value);
  if (value !== value || value === Infinity || value === -Infinity)
    throw new CanonicalJsonError(formatPath(path), `is ${value}`, "JSON has no NaN or Infinity; send null or leave the field out");
  return pythonFloatRepr(value);
}

function describe(value: object): string {
  return (value as { constructor?: { name?: string } }).constructor?.name ?? "an object without a prototype";
}

// Each container level adds one step to `path`, so its length is the nesting depth.
function write(value: unknown, layout: Layout, path: (string | number)[]): string {
  switch (typeof value) {
    case "string":
      return quoteString(value, path);
    case "number":
      return formatNumber(value, path);
    case "boolean":
      return value ? "true" : "false";
    case "undefined":
      throw new CanonicalJsonError(formatPath(path), "is undefined", "JSON has no undefined; leave the field out or send null");
    case "bigint":
      throw new CanonicalJsonError(formatPath(path), "is a bigint",
        "JS cannot read an integer beyond ±(2^53 − 1) back exactly; send a safe integer, a float, or the digits as a string");
    case "object":
      if (value === null) return "null";
      if (path.length >= MAX_DEPTH)
        throw new CanonicalJsonError(formatPath(path), `nests containers deeper than ${MAX_DEPTH} levels`, "flatten the reading");
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          path.push(i);
          out += (i === 0 ? "" : layout.comma) + write(value[i], layout, path);
          path.pop();
        }
        return out + "]";
      }
      if (isPlainObject(value)) {
        const keys = sortedKeys(value);
        let out = "{";
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i]!;
          path.push(key);
          out += (i === 0 ? "" : layout.comma) + quoteString(key, path) + layout.colon + write(value[key], layout, path);
          path.pop();
        }
        return out + "}";
      }
      throw new CanonicalJsonError(formatPath(path), `is a ${describe(value)}`,
        "only null, booleans, numbers, strings, arrays and plain objects can be signed; convert it first (a date to unix seconds, bytes to hex)");
    default:
      throw new CanonicalJsonError(formatPath(path), `is a ${typeof value}`,
        "only null, booleans, numbers, strings, arrays and plain objects can be signed");
  }
}

/**
 * `value` in canonical form: keys in code point order, ASCII only, numbers as in formatNumber.
 * With PYTHON_LAYOUT (the default) this is byte for byte Python's json.dumps(value, sort_keys=True).
 * Throws CanonicalJsonError, naming the path, for a value outside the model. `path` names where
 * `value` sits in a larger value, for the error message.
 */
export function canonicalJson(value: unknown, layout: Layout = PYTHON_LAYOUT, path: (string | number)[] = []): CanonicalJson {
  return write(value, layout, path) as CanonicalJson;
}
