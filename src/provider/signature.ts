// Signs merchant notifications: "Regis-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">" (Stripe's scheme).
const encoder = new TextEncoder();
const keys = new Map<string, ReturnType<typeof crypto.subtle.importKey>>();

function hmacKey(secret: string) {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, key);
  }
  return key;
}

export async function signatureHeader(secret: string, body: string, nowSeconds: number): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(`${nowSeconds}.${body}`));
  return `t=${nowSeconds},v1=${Buffer.from(mac).toString("hex")}`;
}
