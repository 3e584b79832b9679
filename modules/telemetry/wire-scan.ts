// The verifier's fast path: one pass over a received message that accepts it only when it is
// plainly canonical — no whitespace, no string escapes, keys ascending, every number spelled as
// formatNumber spells it — and writes the signed bytes as it goes (the wire's characters with a
// space after each separator, sig left out), without building the value or a string. For anything
// else it returns undefined, and the envelope's full check (parse, serialize, compare) decides and
// says why. So it can make the verifier faster, never more permissive: the tests hold every
// message it accepts to the full check's verdict.
import { formatNumber, MAX_DEPTH } from "telemetry/canonical-json";
import { type EnvelopeHeader, EnvelopeHeaderError, readHeader, SIG_FIELD } from "telemetry/envelope-header";
import { isSigHexAt, SIG_HEX_LENGTH, type SigHex } from "telemetry/envelope-key";

export interface ScannedWire {
  readonly header: EnvelopeHeader;
  /**
   * Python's json.dumps(body, sort_keys=True) as bytes: valid until the next scanWire call, which
   * writes over them (one buffer, so a message costs no allocation for its signed bytes).
   */
  readonly signed: Uint8Array;
  readonly sig: SigHex;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const SPACE = 0x20;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const MINUS = 0x2d;
const ZERO = 0x30;
const DOT = 0x2e;
const NO_PATH: readonly (string | number)[] = [];
const NOT_CANONICAL = -1;

// Made at run time, not while preloading (that would put it in flash), and grown as needed: a
// separator gains a space, so the signed bytes of a wire of n characters take fewer than 2n.
let signedBuffer = new Uint8Array(0);

function isDigit(unit: number): boolean {
  return unit >= 0x30 && unit <= 0x39;
}

/** Whether text[a0, a1) sorts before text[b0, b1) (plain ASCII: code units are code points). */
function before(text: string, a0: number, a1: number, b0: number, b1: number): boolean {
  for (; a0 < a1 && b0 < b1; a0++, b0++) {
    const x = text.charCodeAt(a0);
    const y = text.charCodeAt(b0);
    if (x !== y) return x < y;
  }
  return a0 === a1 && b0 < b1;
}

// Each reader takes the index of a value's first character, appends its signed bytes to `out`
// and returns the index after it, or NOT_CANONICAL.
class Scan {
  length = 0;
  constructor(readonly text: string, readonly out: Uint8Array) {}

  // Printable ASCII but `"` and `\` only: an escape sends the message to the full check.
  string(at: number): number {
    const { text, out } = this;
    let length = this.length;
    out[length++] = QUOTE;
    for (let i = at + 1; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      out[length++] = unit;
      if (unit === QUOTE) {
        this.length = length;
        return i + 1;
      }
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
    if (!this.#shortest(at, first, integerEnd, fractionEnd, i, exponent)) return NOT_CANONICAL;
    this.copy(at, i);
    return i;
  }

  #shortest(at: number, first: number, integerEnd: number, fractionEnd: number, end: number, exponent: boolean): boolean {
    const text = this.text;
    if (!exponent) {
      const integerDigits = integerEnd - first;
      if (fractionEnd === integerEnd) {
        if (integerDigits <= 15) return !(integerDigits === 1 && first !== at && text.charCodeAt(first) === ZERO);
      } else if (text.charCodeAt(fractionEnd - 1) !== ZERO) {
        let significant = fractionEnd - integerEnd - 1;
        if (text.charCodeAt(first) !== ZERO) significant += integerDigits;
        else {
          let zeros = 0;
          while (text.charCodeAt(integerEnd + 1 + zeros) === ZERO) zeros++;
          significant = zeros <= 3 ? significant - zeros : 16;
        }
        if (significant <= 15) return true;
      }
    }
    const token = text.slice(at, end);
    const value = Number(token);
    return value === value && value !== Infinity && value !== -Infinity && formatNumber(value, NO_PATH) === token;
  }

  copy(from: number, to: number): void {
    const { text, out } = this;
    let length = this.length;
    for (let i = from; i < to; i++) out[length++] = text.charCodeAt(i);
    this.length = length;
  }

  literal(at: number, word: string): number {
    if (!this.text.startsWith(word, at)) return NOT_CANONICAL;
    this.copy(at, at + word.length);
    return at + word.length;
  }

  separator(unit: number): void {
    this.out[this.length++] = unit;
    this.out[this.length++] = SPACE;
  }

  value(at: number, depth: number): number {
    switch (this.text.charCodeAt(at)) {
      case QUOTE: return this.string(at);
      case OPEN_ARRAY: return this.array(at, depth + 1);
      case OPEN_OBJECT: return this.object(at, depth + 1);
      case 0x74: return this.literal(at, "true");
      case 0x66: return this.literal(at, "false");
      case 0x6e: return this.literal(at, "null");
      default: return this.number(at);
    }
  }

  array(at: number, depth: number): number {
    return this.#items(at, depth, CLOSE_ARRAY, (i) => this.value(i, depth));
  }

  object(at: number, depth: number): number {
    let previous = -1;
    let previousEnd = -1;
    return this.#items(at, depth, CLOSE_OBJECT, (i) => {
      const keyEnd = this.key(i, previous, previousEnd);
      if (keyEnd === NOT_CANONICAL) return NOT_CANONICAL;
      previous = i + 1;
      previousEnd = keyEnd - 1;
      this.separator(COLON);
      return this.value(keyEnd + 1, depth);
    });
  }

  /**
   * A member's `"key":`, which must sort after its object's previous key, text[previous,
   * previousEnd) (none when previous < 0); returns the index of the colon.
   */
  key(at: number, previous: number, previousEnd: number): number {
    const text = this.text;
    if (text.charCodeAt(at) !== QUOTE) return NOT_CANONICAL;
    const keyEnd = this.string(at);
    if (keyEnd === NOT_CANONICAL || text.charCodeAt(keyEnd) !== COLON) return NOT_CANONICAL;
    return previous < 0 || before(text, previous, previousEnd, at + 1, keyEnd - 1) ? keyEnd : NOT_CANONICAL;
  }

  // A container's brackets and commas; `item` reads one element or member and returns its end.
  #items(at: number, depth: number, close: number, item: (at: number) => number): number {
    if (depth > MAX_DEPTH) return NOT_CANONICAL;
    const text = this.text;
    this.out[this.length++] = text.charCodeAt(at);
    if (text.charCodeAt(at + 1) === close) {
      this.out[this.length++] = close;
      return at + 2;
    }
    for (let i = at + 1; ;) {
      const end = item(i);
      if (end === NOT_CANONICAL) return NOT_CANONICAL;
      const next = text.charCodeAt(end);
      if (next === close) {
        this.out[this.length++] = close;
        return end + 1;
      }
      if (next !== COMMA) return NOT_CANONICAL;
      this.separator(COMMA);
      i = end + 1;
    }
  }
}

/**
 * The value of text[start, end) when it is digits only, else NaN (which readHeader refuses for seq
 * and ts). Exact: a canonical integer token is at most 2^53 − 1.
 */
function digitsValue(text: string, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    const unit = text.charCodeAt(i);
    if (!isDigit(unit)) return NaN;
    value = value * 10 + (unit - ZERO);
  }
  return value;
}

/**
 * The header, signed bytes and sig of `wire` when it is plainly canonical and its header and sig
 * are valid; otherwise undefined, and only the full check can tell whether and why it is refused.
 */
export function scanWire(wire: string): ScannedWire | undefined {
  if (wire.charCodeAt(0) !== OPEN_OBJECT) return undefined;
  if (signedBuffer.length < 2 * wire.length) signedBuffer = new Uint8Array(2 * wire.length);
  const scan = new Scan(wire, signedBuffer);
  scan.out[scan.length++] = OPEN_OBJECT;
  let previous = -1;
  let previousEnd = -1;
  let sig: SigHex | undefined;
  // Wrong types become values readHeader refuses (null for "dev": 1, NaN for "seq": "1").
  let dev: string | null = null;
  let kid: string | null = null;
  let seq = NaN;
  let ts: number | undefined;
  for (let i = 1; ;) {
    const mark = scan.length;
    if (mark > 1) scan.separator(COMMA);
    const keyEnd = scan.key(i, previous, previousEnd);
    if (keyEnd === NOT_CANONICAL) return undefined;
    const key = i + 1;
    previous = key;
    previousEnd = keyEnd - 1;
    const start = keyEnd + 1;
    // The header's keys and sig have two or three characters: other keys need no comparing.
    const keyLength = keyEnd - 1 - key;
    let end: number;
    if (keyLength === 3 && wire.startsWith(SIG_FIELD, key)) {
      // sig is not signed: checked where it lies, not copied
      end = start + SIG_HEX_LENGTH + 2;
      if (wire.charCodeAt(start) !== QUOTE || wire.charCodeAt(end - 1) !== QUOTE || !isSigHexAt(wire, start + 1)) return undefined;
      sig = wire.slice(start + 1, end - 1) as SigHex;
      scan.length = mark;
    } else {
      scan.separator(COLON);
      end = scan.value(start, 1);
      if (end === NOT_CANONICAL) return undefined;
      const quoted = wire.charCodeAt(start) === QUOTE;
      if (keyLength === 3) {
        if (wire.startsWith("dev", key)) dev = quoted ? wire.slice(start + 1, end - 1) : null;
        else if (wire.startsWith("kid", key)) kid = quoted ? wire.slice(start + 1, end - 1) : null;
        else if (wire.startsWith("seq", key)) seq = digitsValue(wire, start, end);
      } else if (keyLength === 2 && wire.startsWith("ts", key)) ts = digitsValue(wire, start, end);
    }
    const next = wire.charCodeAt(end);
    if (next === CLOSE_OBJECT) {
      if (end + 1 !== wire.length) return undefined;
      break;
    }
    if (next !== COMMA) return undefined;
    i = end + 1;
  }
  scan.out[scan.length++] = CLOSE_OBJECT;
  const header = readHeader(ts === undefined ? { dev, kid, seq } : { dev, kid, seq, ts });
  if (header instanceof EnvelopeHeaderError || sig === undefined) return undefined;
  return { header, signed: scan.out.subarray(0, scan.length), sig };
}
