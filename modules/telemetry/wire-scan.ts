// The verifier's fast path: one pass over a received message that accepts it only when it is
// plainly canonical — no whitespace, no string escapes, keys ascending, every number spelled as
// formatNumber spells it — and yields the header, the signed bytes and the sig without building
// the value or writing it out again. For anything else it returns undefined, and the envelope's
// full check (parse, serialize, compare) decides and says why. So it can make the verifier faster,
// never more permissive: the tests hold every message it accepts to the full check's verdict.
import { type CanonicalJson, formatNumber, MAX_DEPTH } from "telemetry/canonical-json";
import { type EnvelopeHeader, EnvelopeHeaderError, readHeader, SIG_FIELD } from "telemetry/envelope-header";
import { isSigHexAt, SIG_HEX_LENGTH, type SigHex } from "telemetry/envelope-key";

export interface ScannedWire {
  readonly header: EnvelopeHeader;
  /** Python's json.dumps(body, sort_keys=True): the wire text with its separators spaced, sig left out. */
  readonly signed: CanonicalJson;
  readonly sig: SigHex;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const MINUS = 0x2d;
const ZERO = 0x30;
const DOT = 0x2e;
const NO_PATH: readonly (string | number)[] = [];
const NOT_CANONICAL = -1;

function isDigit(unit: number): boolean {
  return unit >= 0x30 && unit <= 0x39;
}

// Each reader takes the index of a value's first character and returns the index after it, or
// NOT_CANONICAL; `spaced` then holds the value in Python's layout.
class Scan {
  spaced = "";
  constructor(readonly text: string) {}

  // Printable ASCII but `"` and `\` only: an escape sends the message to the full check.
  string(at: number): number {
    const text = this.text;
    for (let i = at + 1; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      if (unit === QUOTE) return i + 1;
      if (unit < 0x20 || unit > 0x7e || unit === 0x5c) return NOT_CANONICAL;
    }
    return NOT_CANONICAL;
  }

  // JSON's number grammar, then the canonical spelling. A decimal of at most 15 significant
  // digits is the only such decimal that reads back as its double (DBL_DIG), so it is that
  // double's shortest form, which is what formatNumber writes, provided it is also laid out as
  // formatNumber lays it out: an integer other than −0, or a fraction without trailing zeros and
  // without an exponent from 1e-4 up. Other spellings are checked by writing their value out.
  number(at: number): number {
    const text = this.text;
    const first = text.charCodeAt(at) === MINUS ? at + 1 : at;
    let i = first;
    if (text.charCodeAt(i) === ZERO) i++;
    else if (isDigit(text.charCodeAt(i))) while (isDigit(text.charCodeAt(i))) i++;
    else return NOT_CANONICAL;
    const integerEnd = i;
    let fractionEnd = i;
    if (text.charCodeAt(i) === DOT) {
      if (!isDigit(text.charCodeAt(++i))) return NOT_CANONICAL;
      while (isDigit(text.charCodeAt(i))) i++;
      fractionEnd = i;
    }
    let unit = text.charCodeAt(i);
    const exponent = unit === 0x65 || unit === 0x45;
    if (exponent) {
      unit = text.charCodeAt(++i);
      if (unit === 0x2b || unit === MINUS) i++;
      if (!isDigit(text.charCodeAt(i))) return NOT_CANONICAL;
      while (isDigit(text.charCodeAt(i))) i++;
    }
    const token = text.slice(at, i);
    this.spaced = token;
    if (!exponent) {
      const integerDigits = integerEnd - first;
      if (fractionEnd === integerEnd) {
        if (integerDigits <= 15) return integerDigits === 1 && first !== at && text.charCodeAt(first) === ZERO ? NOT_CANONICAL : i;
      } else if (text.charCodeAt(fractionEnd - 1) !== ZERO) {
        let significant = fractionEnd - integerEnd - 1;
        if (text.charCodeAt(first) !== ZERO) significant += integerDigits;
        else {
          let zeros = 0;
          while (text.charCodeAt(integerEnd + 1 + zeros) === ZERO) zeros++;
          significant = zeros <= 3 ? significant - zeros : 16;
        }
        if (significant <= 15) return i;
      }
    }
    const value = Number(token);
    if (value !== value || value === Infinity || value === -Infinity || formatNumber(value, NO_PATH) !== token) return NOT_CANONICAL;
    return i;
  }

  literal(at: number, word: string): number {
    if (!this.text.startsWith(word, at)) return NOT_CANONICAL;
    this.spaced = word;
    return at + word.length;
  }

  value(at: number, depth: number): number {
    switch (this.text.charCodeAt(at)) {
      case QUOTE: {
        const end = this.string(at);
        if (end !== NOT_CANONICAL) this.spaced = this.text.slice(at, end);
        return end;
      }
      case OPEN_ARRAY: return this.array(at, depth + 1);
      case OPEN_OBJECT: return this.object(at, depth + 1);
      case 0x74: return this.literal(at, "true");
      case 0x66: return this.literal(at, "false");
      case 0x6e: return this.literal(at, "null");
      default: return this.number(at);
    }
  }

  array(at: number, depth: number): number {
    if (depth > MAX_DEPTH) return NOT_CANONICAL;
    const text = this.text;
    if (text.charCodeAt(at + 1) === CLOSE_ARRAY) {
      this.spaced = "[]";
      return at + 2;
    }
    let out = "[";
    for (let i = at + 1; ;) {
      const end = this.value(i, depth);
      if (end === NOT_CANONICAL) return NOT_CANONICAL;
      out += this.spaced;
      const next = text.charCodeAt(end);
      if (next === CLOSE_ARRAY) {
        this.spaced = out + "]";
        return end + 1;
      }
      if (next !== COMMA) return NOT_CANONICAL;
      out += ", ";
      i = end + 1;
    }
  }

  // Keys are plain ASCII here, so JS's code unit order is Python's code point order.
  object(at: number, depth: number): number {
    if (depth > MAX_DEPTH) return NOT_CANONICAL;
    const text = this.text;
    if (text.charCodeAt(at + 1) === CLOSE_OBJECT) {
      this.spaced = "{}";
      return at + 2;
    }
    let out = "{";
    let previous = "";
    for (let i = at + 1; ;) {
      if (text.charCodeAt(i) !== QUOTE) return NOT_CANONICAL;
      const keyEnd = this.string(i);
      if (keyEnd === NOT_CANONICAL || text.charCodeAt(keyEnd) !== COLON) return NOT_CANONICAL;
      const key = text.slice(i + 1, keyEnd - 1);
      if (out.length > 1 && !(previous < key)) return NOT_CANONICAL;
      previous = key;
      const end = this.value(keyEnd + 1, depth);
      if (end === NOT_CANONICAL) return NOT_CANONICAL;
      out += "\"" + key + "\": " + this.spaced;
      const next = text.charCodeAt(end);
      if (next === CLOSE_OBJECT) {
        this.spaced = out + "}";
        return end + 1;
      }
      if (next !== COMMA) return NOT_CANONICAL;
      out += ", ";
      i = end + 1;
    }
  }
}

/**
 * The header, signed bytes and sig of `wire` when it is plainly canonical and its header and sig
 * are valid; otherwise undefined, and only the full check can tell whether and why it is refused.
 */
export function scanWire(wire: string): ScannedWire | undefined {
  if (wire.charCodeAt(0) !== OPEN_OBJECT) return undefined;
  const scan = new Scan(wire);
  let signed = "{";
  let previous = "";
  let sig: SigHex | undefined;
  // Wrong types become values readHeader refuses (null for "dev": 1, NaN for "seq": "1").
  let dev: string | null = null;
  let kid: string | null = null;
  let seq = NaN;
  let ts: number | undefined;
  for (let i = 1; ;) {
    if (wire.charCodeAt(i) !== QUOTE) return undefined;
    const keyEnd = scan.string(i);
    if (keyEnd === NOT_CANONICAL || wire.charCodeAt(keyEnd) !== COLON) return undefined;
    const key = wire.slice(i + 1, keyEnd - 1);
    if (i > 1 && !(previous < key)) return undefined;
    previous = key;
    const start = keyEnd + 1;
    const end = scan.value(start, 1);
    if (end === NOT_CANONICAL) return undefined;
    const quoted = wire.charCodeAt(start) === QUOTE;
    if (key === SIG_FIELD) {
      // checked on the message, a flat string: read through a slice, each character costs more
      if (!quoted || end - start !== SIG_HEX_LENGTH + 2 || !isSigHexAt(wire, start + 1)) return undefined;
      sig = wire.slice(start + 1, end - 1) as SigHex;
    } else {
      signed += (signed.length > 1 ? ", " : "") + wire.slice(i, keyEnd) + ": " + scan.spaced;
      if (key === "dev") dev = quoted ? wire.slice(start + 1, end - 1) : null;
      else if (key === "kid") kid = quoted ? wire.slice(start + 1, end - 1) : null;
      else if (key === "seq") seq = Number(scan.spaced);
      else if (key === "ts") ts = Number(scan.spaced);
    }
    const next = wire.charCodeAt(end);
    if (next === CLOSE_OBJECT) {
      if (end + 1 !== wire.length) return undefined;
      break;
    }
    if (next !== COMMA) return undefined;
    i = end + 1;
  }
  const header = readHeader(ts === undefined ? { dev, kid, seq } : { dev, kid, seq, ts });
  if (header instanceof EnvelopeHeaderError || sig === undefined) return undefined;
  return { header, signed: `${signed}}` as CanonicalJson, sig };
}
