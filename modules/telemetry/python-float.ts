// Python's repr(float) for any finite double: the shortest decimal that reads back as the same
// double (the closest such; on a tie, the one ending in an even digit), in Python's layout.
//
// The engine's own number-to-string cannot be trusted for the digits: XS (measured in an xsnap
// worker) sometimes prints a longer string than needed (1e23 as 9.999999999999999e+22), breaks
// ties the other way (806494943051781.25 as ...781.3) or prints a string that does not read back
// (32795590100022052 as 32795590100022050); its string-to-number also rounds exact ties away
// from even. Python would re-sign such a message differently. So the engine's text is used only
// where it is provably the answer, and otherwise the digits are generated exactly.

interface Decimal {
  /** significant digits, no leading or trailing zeros */
  readonly digits: string;
  /** value = 0.<digits> × 10^point */
  readonly point: number;
}

// Where an engine's text can be checked by reading it back: from the smallest normal double
// (below, doubles have fewer than 15 significant digits of precision) up to 2^53 (below, no
// midpoint between two doubles has 15 or fewer significant digits, so no read-back of such a
// text is a tie that a misrounding parser could get wrong).
const MIN_NORMAL = 2.2250738585072014e-308;
const TIE_FREE_LIMIT = 2 ** 53;

// `text` is a decimal the engine wrote for `value`. Every decimal of at most 15 significant
// digits maps to its own double (DBL_DIG), so if one such reads back as `value` it is the only
// one, and therefore the shortest: whatever its rounding, an engine's text that passes is right.
function fromText(text: string, value: number): Decimal | undefined {
  if (Number(text) !== value) return undefined;
  const e = text.indexOf("e");
  const mantissa = e < 0 ? text : text.slice(0, e);
  const dot = mantissa.indexOf(".");
  const all = dot < 0 ? mantissa : mantissa.slice(0, dot) + mantissa.slice(dot + 1);
  let lead = 0;
  while (all.charCodeAt(lead) === 0x30) lead++;
  let end = all.length;
  while (end > lead && all.charCodeAt(end - 1) === 0x30) end--;
  if (end - lead > 15) return undefined;
  return { digits: all.slice(lead, end), point: (dot < 0 ? mantissa.length : dot) + (e < 0 ? 0 : Number(text.slice(e + 1))) - lead };
}

// Burger and Dybvig's free-format algorithm ("Printing Floating-Point Numbers Quickly and
// Accurately", 1996) in exact integer arithmetic, with the closest-digit and round-half-even
// choices of David Gay's dtoa, which Python uses. `value` is positive and finite.
function exactShortest(value: number): Decimal {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const high = view.getUint32(0);
  const biased = high >>> 20;
  let f = (BigInt(high & 0xfffff) << 32n) | BigInt(view.getUint32(4));
  let e = -1074;
  if (biased !== 0) {
    f |= 1n << 52n;
    e = biased - 1075;
  }
  // value = f × 2^e. It reads back from anything strictly between the midpoints to its
  // neighbours, and from the midpoints too when f is even (round-half-even).
  const inclusive = (f & 1n) === 0n;
  // At a power of two (above the subnormals) the next double down is half as far as the next up.
  const unequalGaps = biased > 1 && f === 1n << 52n;
  // value = r / s; the midpoints are (r − mMinus) / s and (r + mPlus) / s.
  let r: bigint;
  let s: bigint;
  let mPlus: bigint;
  let mMinus: bigint;
  if (e >= 0) {
    const unit = 1n << BigInt(e);
    r = f * unit * (unequalGaps ? 4n : 2n);
    s = unequalGaps ? 4n : 2n;
    mPlus = unequalGaps ? unit * 2n : unit;
    mMinus = unit;
  } else {
    r = f * (unequalGaps ? 4n : 2n);
    s = 1n << BigInt(unequalGaps ? 2 - e : 1 - e);
    mPlus = unequalGaps ? 2n : 1n;
    mMinus = 1n;
  }
  // An estimate of the decimal exponent that is too low (the loop raises it) but never too high,
  // even with an engine's log10 a little off: too high would make a leading zero digit.
  let point = Math.ceil(Math.log10(value)) - 1;
  if (point >= 0) s *= 10n ** BigInt(point);
  else {
    const scale = 10n ** BigInt(-point);
    r *= scale;
    mPlus *= scale;
    mMinus *= scale;
  }
  while (inclusive ? r + mPlus >= s : r + mPlus > s) {
    s *= 10n;
    point++;
  }
  let digits = "";
  for (;;) {
    r *= 10n;
    mPlus *= 10n;
    mMinus *= 10n;
    let digit = r / s;
    r %= s;
    const low = inclusive ? r <= mMinus : r < mMinus;
    const up = inclusive ? r + mPlus >= s : r + mPlus > s;
    if (low || up) {
      if (up && (!low || 2n * r > s || (2n * r === s && (digit & 1n) === 1n))) digit++;
      return { digits: digits + digit.toString(), point };
    }
    digits += digit.toString();
  }
}

/** repr(value) in Python, for a finite double. */
export function pythonFloatRepr(value: number): string {
  const sign = value < 0 || Object.is(value, -0) ? "-" : "";
  const magnitude = sign ? -value : value;
  if (magnitude === 0) return sign + "0.0";
  const checkable = magnitude >= MIN_NORMAL && magnitude < TIE_FREE_LIMIT;
  const text = String(magnitude);
  // The common reading, e.g. 23.5: at most 15 digits with a fraction, from 1e-4 up, where both
  // languages write it alike once it is proven the shortest.
  if (checkable && text.length <= 16 && text.indexOf("e") < 0 && text.indexOf(".") > 0 && !text.startsWith("0.0000") &&
    Number(text) === magnitude) return sign + text;

  const { digits, point } = (checkable ? fromText(text, magnitude) ?? fromText(magnitude.toPrecision(15), magnitude) : undefined) ??
    exactShortest(magnitude);
  // Python writes 1e-4 ≤ |value| < 1e16 without an exponent, then with a sign and two digits.
  if (point > -4 && point <= 16) {
    if (point <= 0) return sign + "0." + "0".repeat(-point) + digits;
    if (point >= digits.length) return sign + digits + "0".repeat(point - digits.length) + ".0";
    return sign + digits.slice(0, point) + "." + digits.slice(point);
  }
  const exponent = point - 1;
  const size = exponent < 0 ? -exponent : exponent;
  return sign + digits[0] + (digits.length > 1 ? "." + digits.slice(1) : "") + (exponent < 0 ? "e-" : "e+") + (size < 10 ? "0" : "") + size;
}
