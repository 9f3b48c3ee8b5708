// API keys: merchants and operators present `Authorization: Bearer <key>`; only SHA-256 digests are configured.
import type { Config } from "../config.ts";

const encoder = new TextEncoder();

export async function sha256Hex(text: string) {
  return Buffer.from(await crypto.subtle.digest("SHA-256", encoder.encode(text))).toString("hex");
}

/** The key of an `Authorization: Bearer <key>` header (the scheme's name is case-insensitive, RFC 9110 §11.1). */
export function bearer(header: string | undefined) {
  const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header ?? "");
  return match?.[1] ?? null;
}

/** Compares against every configured digest in constant time, so timing reveals neither the key nor which matched. */
function matches(digest: string, candidates: string[]) {
  const presented = encoder.encode(digest);
  let found = false;
  for (const candidate of candidates) {
    const expected = encoder.encode(candidate);
    if (expected.byteLength === presented.byteLength && crypto.subtle.timingSafeEqual(expected, presented)) found = true;
  }
  return found;
}

/** The merchant whose key this is, or null. */
export async function merchantOf(config: Config, key: string | null): Promise<string | null> {
  if (!key) return null;
  const digest = await sha256Hex(key);
  let merchant: string | null = null;
  for (const [merchantId, digests] of Object.entries(config.MERCHANT_KEYS)) if (matches(digest, digests)) merchant = merchantId;
  return merchant;
}

export async function isAdmin(config: Config, key: string | null) {
  return key !== null && matches(await sha256Hex(key), config.ADMIN_KEYS);
}
