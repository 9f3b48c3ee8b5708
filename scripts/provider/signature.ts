// Webhook signatures, header "Regis-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">".
import { createHmac, timingSafeEqual } from "node:crypto";

export const signatureHeader = "regis-signature";
export const toleranceSeconds = 300;

export type SignatureVerdict = "ok" | "invalid_signature" | "timestamp_out_of_tolerance";

function digest(secret: string, timestamp: string, rawBody: string | Uint8Array): Buffer {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(rawBody).digest();
}

// For senders and tests: the header value for a body sent at `timestamp` (unix seconds).
export function signPayload(secret: string, rawBody: string, timestamp: number): string {
  return `t=${timestamp},v1=${digest(secret, String(timestamp), rawBody).toString("hex")}`;
}

// Accepts any of several v1 entries (secret rotation); checks the signature before the clock.
export function verifySignature(
  secret: string,
  header: string | undefined,
  rawBody: Uint8Array,
  nowSeconds: number,
): SignatureVerdict {
  if (!header) return "invalid_signature";
  let timestamp: string | undefined;
  const candidates: string[] = [];
  for (const part of header.split(",")) {
    const at = part.indexOf("=");
    const name = part.slice(0, at).trim();
    const value = part.slice(at + 1).trim();
    if (name === "t") timestamp = value;
    else if (name === "v1" && /^[0-9a-f]{64}$/i.test(value)) candidates.push(value);
  }
  if (timestamp === undefined || !/^\d{1,12}$/.test(timestamp) || candidates.length === 0) return "invalid_signature";
  const expected = digest(secret, timestamp, rawBody);
  const valid = candidates.some((candidate) => timingSafeEqual(Buffer.from(candidate, "hex"), expected));
  if (!valid) return "invalid_signature";
  return Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds ? "timestamp_out_of_tolerance" : "ok";
}
