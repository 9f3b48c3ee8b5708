// Short-lived signed tickets for the live WebSocket: browsers cannot send an Authorization header on a
// WebSocket, so the page trades its key for a ticket naming one payment and merchant, valid for seconds.
const encoder = new TextEncoder();
const b64url = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromB64url = (s: string) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

export type Ticket = { paymentId: string; merchantId: string; expiresAt: number };

// The secret is the tickets' own (LIVE_TICKET_SECRET), held by the Worker alone.
const ticketKey = (secret: string) => crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);

export async function signTicket(secret: string, t: Ticket) {
  const payload = encoder.encode(JSON.stringify([t.paymentId, t.merchantId, t.expiresAt]));
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await ticketKey(secret), payload));
  return `${b64url(payload)}.${b64url(mac)}`;
}

/** The ticket's claims if its signature holds and it has not expired, else null. */
export async function verifyTicket(secret: string, ticket: string, nowMs: number): Promise<Ticket | null> {
  const [payload, mac] = ticket.split(".");
  if (!payload || !mac || ticket.length > 512) return null;
  try {
    const bytes = fromB64url(payload);
    if (!(await crypto.subtle.verify("HMAC", await ticketKey(secret), fromB64url(mac), bytes))) return null;
    const [paymentId, merchantId, expiresAt] = JSON.parse(new TextDecoder().decode(bytes)) as [string, string, number];
    return expiresAt > nowMs ? { paymentId, merchantId, expiresAt } : null;
  } catch {
    return null;
  }
}
