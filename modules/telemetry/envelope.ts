// The signed telemetry message (docs/telemetry-envelope.md): a JSON object whose `sig` is the
// HMAC-SHA256 of every other field in Python's canonical form. The device signs with it and the
// verifier checks with it; this module is the only implementation of the format.
//
// The wire is the same object in canonical form without whitespace. Python's json.loads ignores
// the whitespace, so the classic verifier still accepts it; requiring exactly this form on receipt
// means one value has one wire text, so nothing about a message (duplicate keys, escapes, number
// spellings) can be changed without breaking the signature or the form.
import type { DeviceId } from "identity/device-id";
import {
  canonicalJson, CanonicalJsonError, COMPACT_LAYOUT, compareCodePoints, isPlainObject, PYTHON_LAYOUT,
  quoteString, sortedKeys, type CanonicalJson, type JsonObject, type JsonValue,
} from "telemetry/canonical-json";
import { type EnvelopeHeader, EnvelopeHeaderError, type KeyId, readHeader, SIG_FIELD } from "telemetry/envelope-header";
import { type EnvelopeKey, isSigHex, SIG_HEX_LENGTH, type SigHex } from "telemetry/envelope-key";
import { scanWire } from "telemetry/wire-scan";

/**
 * Most bytes one message may take on the wire (ASCII, so characters). Typical readings take
 * about 150; the cap bounds what a verifier parses and what a device allocates per message.
 */
export const MAX_WIRE_BYTES = 1024;

/** A message as sent: canonical, compact, signed. */
export type Wire = CanonicalJson;

/** What a device signs: the header fields plus its reading's fields (any name but `sig`). */
export type EnvelopeBody = EnvelopeHeader & { readonly [field: string]: JsonValue | undefined };

export interface ParsedEnvelope {
  readonly header: EnvelopeHeader;
  /** Every field but `sig`, header included; a fresh object on each read, which the caller owns. */
  readonly body: JsonObject;
  /** The bytes `sig` covers: Python's json.dumps(body, sort_keys=True). */
  readonly signed: CanonicalJson;
  readonly sig: SigHex;
}

/** A parsed envelope whose signature matched a key: only verifyEnvelope makes one. */
export type VerifiedEnvelope = ParsedEnvelope & { readonly __brand: "VerifiedEnvelope" };

export type RejectReason =
  /** longer than MAX_WIRE_BYTES */
  | "oversize"
  /** not JSON, not an object, or a value outside the value model */
  | "malformed"
  /** no `sig` field */
  | "missing-sig"
  /** `dev`, `kid`, `seq` or `ts` missing or invalid */
  | "bad-header"
  /** valid, but not the one canonical wire text of its value */
  | "non-canonical"
  /** the key lookup has no key for this `dev` and `kid` */
  | "unknown-kid"
  /** `sig` is not 64 lowercase hex digits, or not the body's signature */
  | "bad-sig";

export interface Rejection {
  readonly ok: false;
  readonly reason: RejectReason;
  readonly detail: string;
  /** The header when it could be read, for logging and counting by device. */
  readonly header?: EnvelopeHeader;
}

export type VerifyResult = { readonly ok: true; readonly envelope: VerifiedEnvelope } | Rejection;

/** The key for a device's key id, or undefined when there is none. */
export type KeyLookup = (dev: DeviceId, kid: KeyId) => EnvelopeKey | undefined;

export class EnvelopeSizeError extends Error {
  override name = "EnvelopeSizeError";
  constructor(readonly size: number) {
    super(`telemetry message would be ${size} bytes on the wire, over the ${MAX_WIRE_BYTES}-byte limit: ` +
      `send fewer or shorter fields, or split the reading into several messages`);
  }
}

export class EnvelopeRejectedError extends Error {
  override name = "EnvelopeRejectedError";
  constructor(readonly reason: RejectReason, readonly detail: string) {
    super(`telemetry message rejected (${reason}): ${detail}`);
  }
}

// `"sig":"<64 hex>"`
const SIG_MEMBER_LENGTH = SIG_FIELD.length + SIG_HEX_LENGTH + 5;

interface Members {
  readonly signed: CanonicalJson;
  /** `"key":value` for every field but sig, in canonical order */
  readonly parts: string[];
  /** where the sig member goes among `parts` */
  readonly sigAt: number;
}

// One pass gives both forms: the signed bytes (Python's spaced layout) and the wire's members.
// Scalars read the same in both layouts, so only containers are written twice.
function serializeMembers(object: JsonObject): Members {
  const keys = sortedKeys(object);
  const parts: string[] = [];
  const path: (string | number)[] = [""];
  let signed = "{";
  let sigAt = -1;
  for (const key of keys) {
    if (key === SIG_FIELD) {
      sigAt = parts.length;
      continue;
    }
    if (sigAt < 0 && compareCodePoints(key, SIG_FIELD) > 0) sigAt = parts.length;
    path[0] = key;
    const value = object[key];
    const quoted = quoteString(key, path);
    let spaced: string;
    let compact: string;
    if (typeof value === "object" && value !== null) {
      spaced = canonicalJson(value, PYTHON_LAYOUT, path);
      compact = canonicalJson(value, COMPACT_LAYOUT, path);
    } else compact = spaced = canonicalJson(value, PYTHON_LAYOUT, path);
    signed += (parts.length === 0 ? "" : ", ") + quoted + ": " + spaced;
    parts.push(quoted + ":" + compact);
  }
  return { signed: (signed + "}") as CanonicalJson, parts, sigAt: sigAt < 0 ? parts.length : sigAt };
}

function wireLength(members: Members): number {
  let length = 2 + SIG_MEMBER_LENGTH + members.parts.length;
  for (const part of members.parts) length += part.length;
  return length;
}

function wireText(members: Members, sig: SigHex): Wire {
  const { parts, sigAt } = members;
  const sigMember = `"${SIG_FIELD}":"${sig}"`;
  let text = sigAt === 0 ? `{${sigMember}` : "{";
  for (let i = 0; i < parts.length; i++) {
    text += (text.length > 1 ? "," : "") + parts[i];
    if (i + 1 === sigAt) text += `,${sigMember}`;
  }
  return `${text}}` as Wire;
}

/**
 * The wire message for `body`, signed with `key`. Throws EnvelopeHeaderError for a bad header
 * field or a `sig` field in the body, CanonicalJsonError (naming the path) for a value outside the
 * value model, EnvelopeSizeError over MAX_WIRE_BYTES.
 */
export function signEnvelope(body: EnvelopeBody, key: EnvelopeKey): Wire {
  if (!isPlainObject(body))
    throw new CanonicalJsonError("$", "is not a plain object", "pass the reading as an object literal with dev, kid, seq and, when the clock is trusted, ts");
  const header = readHeader(body);
  if (header instanceof EnvelopeHeaderError) throw header;
  if (Object.hasOwn(body, SIG_FIELD))
    throw new EnvelopeHeaderError(SIG_FIELD, "is set: it is reserved for the signature, which signEnvelope adds; rename the reading's field");
  const members = serializeMembers(body as JsonObject);
  const size = wireLength(members);
  if (size > MAX_WIRE_BYTES) throw new EnvelopeSizeError(size);
  return wireText(members, key.sign(members.signed));
}

function reject(reason: RejectReason, detail: string, header?: EnvelopeHeader): Rejection {
  return header ? { ok: false, reason, detail, header } : { ok: false, reason, detail };
}

function firstDifference(expected: string, actual: string): string {
  let i = 0;
  while (i < expected.length && expected.charCodeAt(i) === actual.charCodeAt(i)) i++;
  return `at character ${i}, expected ${JSON.stringify(expected.slice(i, i + 12))}, got ${JSON.stringify(actual.slice(i, i + 12))} ` +
    `(keys sorted by code point, no whitespace, ASCII with Python's escapes, numbers as Python writes them)`;
}

class ParsedWire implements ParsedEnvelope {
  readonly #wire: string;
  #signed: CanonicalJson | undefined;

  constructor(wire: string, readonly header: EnvelopeHeader, readonly sig: SigHex, signed?: CanonicalJson) {
    this.#wire = wire;
    this.#signed = signed;
  }

  // Made when asked for: copying every field but sig on each message cost the verifier as much as
  // the canonical check.
  get body(): JsonObject {
    const { [SIG_FIELD]: _sig, ...body } = JSON.parse(this.#wire) as JsonObject;
    return body;
  }

  // The wire is canonical, so its value's canonical form is exactly what the signature covers.
  get signed(): CanonicalJson {
    return (this.#signed ??= canonicalJson(this.body));
  }
}

interface Inspected {
  readonly ok: true;
  readonly envelope: ParsedEnvelope;
  /** the signed bytes to MAC: bytes from the fast path (valid until the next message), else text */
  readonly signed: CanonicalJson | Uint8Array;
}

function inspect(wire: unknown): Inspected | Rejection {
  if (typeof wire !== "string") return reject("malformed", `a message is a string, got ${typeof wire}`);
  if (wire.length > MAX_WIRE_BYTES) return reject("oversize", `${wire.length} bytes, over the ${MAX_WIRE_BYTES}-byte limit`);
  const scanned = scanWire(wire);
  if (scanned) return { ok: true, envelope: new ParsedWire(wire, scanned.header, scanned.sig), signed: scanned.signed };
  // Not plainly canonical: parse, write the value out again and compare, to accept or say why not.
  let value: unknown;
  try {
    value = JSON.parse(wire);
  } catch (error) {
    return reject("malformed", `not JSON: ${(error as Error).message}`);
  }
  if (!isPlainObject(value)) return reject("malformed", "not a JSON object");
  if (!Object.hasOwn(value, SIG_FIELD)) return reject("missing-sig", `no "${SIG_FIELD}" field`);
  const header = readHeader(value);
  if (header instanceof EnvelopeHeaderError) return reject("bad-header", header.message);
  const sig = value[SIG_FIELD];
  if (!isSigHex(sig)) return reject("bad-sig", `"${SIG_FIELD}" is not ${SIG_HEX_LENGTH} lowercase hex digits`, header);
  let members: Members;
  try {
    members = serializeMembers(value);
  } catch (error) {
    if (!(error instanceof CanonicalJsonError)) throw error;
    return reject("malformed", error.message, header);
  }
  const canonical = wireText(members, sig);
  if (canonical !== wire) return reject("non-canonical", firstDifference(canonical, wire), header);
  return { ok: true, envelope: new ParsedWire(wire, header, sig, members.signed), signed: members.signed };
}

/**
 * A message's fields, checked for everything but its signature: use it to inspect a message
 * (e.g. from the command line). Throws EnvelopeRejectedError with the reason.
 */
export function parseEnvelope(wire: string): ParsedEnvelope {
  const result = inspect(wire);
  if (!result.ok) throw new EnvelopeRejectedError(result.reason, result.detail);
  return result.envelope;
}

/**
 * Checks a received message: form, header, then the signature with the key `lookup` gives for its
 * `dev` and `kid`, compared in constant time. Never throws for any input (only if `lookup` does).
 * Replay and topic checks are the caller's: the result carries the header for them.
 */
export function verifyEnvelope(wire: string, lookup: KeyLookup): VerifyResult {
  const result = inspect(wire);
  if (!result.ok) return result;
  const { header, sig } = result.envelope;
  const key = lookup(header.dev, header.kid);
  if (!key) return reject("unknown-kid", `no key "${header.kid}" for device "${header.dev}"`, header);
  if (!key.matches(result.signed, sig)) return reject("bad-sig", "the signature does not match the message", header);
  return { ok: true, envelope: result.envelope as VerifiedEnvelope };
}
