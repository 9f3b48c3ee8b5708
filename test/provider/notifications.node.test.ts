// Notification route of the provider simulator: Regis-Signature checks, clock tolerance and duplicate deliveries.
import { describe, expect, it } from "vitest";
import { signPayload, verifySignature } from "../../scripts/provider/signature.ts";
import { keyed, useSimulator } from "./simulator.ts";

const secret = "whsec_test_secret";
const send = "/notifications/api/send";
const body = JSON.stringify({ id: "pay-1", jsonPayload: JSON.stringify({ paymentId: "pay-1", status: "completed" }) });
const now = () => Math.floor(Date.now() / 1000);
const signed = (timestamp = now(), raw = body, key = secret) => ({ "Regis-Signature": signPayload(key, raw, timestamp) });

describe("when a webhook secret is configured", () => {
  const sim = useSimulator({ webhookSecret: secret });

  it("accepts a correctly signed notification", async () => {
    const answer = await sim.post(send, body, signed());

    expect(answer).toEqual({ status: 200, body: { received: true } });
    expect((await sim.get("/_sim/calls")).body).toMatchObject([
      { route: "notify", status: 200, outcome: "ok", body: JSON.parse(body) },
    ]);
  });

  it.each([
    ["no signature header", {}],
    ["a signature made with another secret", signed(now(), body, "another-secret")],
    ["a signature of another body", signed(now(), body.replace("completed", "refunded"))],
    ["a header without a timestamp", { "Regis-Signature": signPayload(secret, body, now()).replace(/^t=\d+,/, "") }],
    ["a malformed header", { "Regis-Signature": "v1=zz,t=abc" }],
  ])("rejects %s with 400 invalid_signature", async (_case, headers) => {
    const answer = await sim.post(send, body, headers);

    expect(answer).toEqual({ status: 400, body: { code: "invalid_signature", message: expect.any(String) } });
  });

  it.each([
    ["more than 300 s old", -305],
    ["more than 300 s ahead", 305],
  ])("rejects a valid signature %s with 400 timestamp_out_of_tolerance", async (_case, offset) => {
    const answer = await sim.post(send, body, signed(now() + offset));

    expect(answer).toEqual({ status: 400, body: { code: "timestamp_out_of_tolerance", message: expect.any(String) } });
  });

  it("accepts a timestamp within the tolerance", async () => {
    expect((await sim.post(send, body, signed(now() - 290))).status).toBe(200);
  });

  it("rejects a signed body that is not { id, jsonPayload } with 400", async () => {
    const raw = JSON.stringify({ id: "pay-1", jsonPayload: "{not json" });

    expect((await sim.post(send, raw, signed(now(), raw))).body.code).toBe("invalid_request");
  });

  describe("when the same Idempotency-Key is delivered twice", () => {
    it("accepts the repeat and flags it as a duplicate delivery", async () => {
      const first = await sim.post(send, body, { ...signed(), ...keyed("note-1") });
      const repeat = await sim.post(send, body, { ...signed(), ...keyed("note-1") });

      expect(first).toEqual({ status: 200, body: { received: true } });
      expect(repeat).toEqual({ status: 200, body: { received: true, duplicate: true } });
      const calls = (await sim.get("/_sim/calls")).body;
      expect(calls.map((call: { outcome: string }) => call.outcome)).toEqual(["ok", "duplicate"]);
    });

    it("answers 422 idempotency_key_reused when the body differs", async () => {
      await sim.post(send, body, { ...signed(), ...keyed("note-1") });
      const other = JSON.stringify({ id: "pay-2", jsonPayload: "{}" });

      const answer = await sim.post(send, other, { ...signed(now(), other), ...keyed("note-1") });

      expect([answer.status, answer.body.code]).toEqual([422, "idempotency_key_reused"]);
    });
  });
});

describe("when no webhook secret is configured", () => {
  const sim = useSimulator();

  it("accepts unsigned notifications", async () => {
    expect(await sim.post(send, body)).toEqual({ status: 200, body: { received: true } });
  });
});

describe("verifying a signature", () => {
  const raw = new TextEncoder().encode(body);

  it("accepts any one matching v1 among several (secret rotation)", () => {
    const good = signPayload(secret, body, 1_700_000_000);
    const header = `${good.replace(/v1=.*/, `v1=${"0".repeat(64)}`)},${good.split(",")[1]}`;

    expect(verifySignature(secret, header, raw, 1_700_000_000)).toBe("ok");
  });

  it("rejects a matching signature followed by extra characters", () => {
    expect(verifySignature(secret, `${signPayload(secret, body, 1_700_000_000)}00`, raw, 1_700_000_000)).toBe(
      "invalid_signature",
    );
  });
});
