// Test helper: one provider simulator per describe block on an ephemeral port, reset before each test, and a JSON client.
import { afterAll, beforeAll, beforeEach } from "vitest";
import {
  type ProviderSimulator,
  type ProviderSimulatorOptions,
  startProviderSimulator,
} from "../../scripts/provider/server.ts";

// answers are asserted field by field, so their bodies stay untyped
export type Answer = { status: number; body: any };

export type SimulatorClient = {
  readonly url: string;
  close(): Promise<void>;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Answer>;
  post(path: string, body?: unknown, headers?: Record<string, string>): Promise<Answer>;
  get(path: string): Promise<Answer>;
};

export function useSimulator(options: ProviderSimulatorOptions = {}): SimulatorClient {
  let simulator: ProviderSimulator | undefined;
  beforeAll(async () => {
    simulator = await startProviderSimulator({ ...options, port: 0 });
  });
  afterAll(async () => {
    await simulator?.close();
  });
  const client: SimulatorClient = {
    get url() {
      if (!simulator) throw new Error("the simulator is not started");
      return simulator.url;
    },
    close: () => simulator?.close() ?? Promise.resolve(),
    async request(method, path, body, headers = {}) {
      const response = await fetch(client.url + path, {
        method,
        headers: { "content-type": "application/json", ...headers },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    },
    post: (path, body, headers) => client.request("POST", path, body, headers),
    get: (path) => client.request("GET", path),
  };
  beforeEach(async () => {
    await client.post("/_sim/reset");
  });
  return client;
}

export const keyed = (key: string) => ({ "Idempotency-Key": key });

export const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// Creates and settles a payment; answers its id.
export async function settledPayment(sim: SimulatorClient, amount: number, currency = "GBP"): Promise<string> {
  const created = await sim.post("/psp/api/payments/create", { amount, currency });
  const settled = await sim.post(`/psp/api/payments/${created.body.paymentId}/settle`);
  if (settled.status !== 200) throw new Error(`settle answered ${settled.status}`);
  return created.body.paymentId;
}
