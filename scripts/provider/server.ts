// HTTP server of the provider simulator (node:http only): reads the body, matches the routing table, injects faults, records calls.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { pickFault } from "./faults.ts";
import { parseJson } from "./json.ts";
import { matchRoute, reject, type SimRequest } from "./routes.ts";
import { type Call, createState, recordCall, type Result, wakeHeld } from "./state.ts";

export type ProviderSimulatorOptions = { port?: number; host?: string; webhookSecret?: string; log?: boolean };
export type ProviderSimulator = { url: string; port: number; close(): Promise<void> };

const maxBodyBytes = 1 << 20;

async function readBody(request: IncomingMessage): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= maxBodyBytes) chunks.push(chunk);
  }
  return size <= maxBodyBytes ? Buffer.concat(chunks) : null;
}

function send(response: ServerResponse, result: Pick<Result, "status" | "body">): void {
  const text = JSON.stringify(result.body);
  response.writeHead(result.status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

export async function startProviderSimulator(opts: ProviderSimulatorOptions = {}): Promise<ProviderSimulator> {
  const { port = 0, host = "127.0.0.1", webhookSecret, log = false } = opts;
  const state = createState(webhookSecret);
  // aborts pending latency delays and wakes held calls on close(); unanswered (timeout) requests end when close() destroys their sockets
  const closing = new AbortController();

  const logCall = (call: Call) => {
    if (log) process.stderr.write(`#${call.seq} ${call.method} ${call.path} -> ${call.status ?? "held"} ${call.outcome}\n`);
  };

  async function handle(incoming: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = incoming.method ?? "GET";
    const path = new URL(incoming.url ?? "/", "http://simulator").pathname;
    const raw = await readBody(incoming);
    if (raw === null) return send(response, reject(413, "body_too_large", `bodies are limited to ${maxBodyBytes} bytes`));
    const match = matchRoute(method, path);
    if (!match) return send(response, reject(404, "not_found", `no route for ${method} ${path}`));
    const key = incoming.headers["idempotency-key"];
    const request: SimRequest = {
      method,
      path,
      params: match.params,
      headers: incoming.headers,
      raw,
      body: parseJson(raw),
      idempotencyKey: typeof key === "string" && key !== "" ? key : null,
    };
    const route = match.entry.records;
    if (!route) return send(response, match.entry.handle(request, state));

    const call = {
      method,
      path,
      route,
      idempotencyKey: request.idempotencyKey,
      body: request.body ?? (raw.length > 0 ? raw.toString("utf8") : null),
    };
    // The same key again while its first request is still under way (here: its latency) is refused as Stripe does,
    // 409 idempotency_key_in_use: the client should retry later, when the first has an answer to replay.
    const keyed = request.idempotencyKey === null ? null : `${method} ${path} ${request.idempotencyKey}`;
    if (keyed !== null && state.underWay.has(keyed)) {
      const result = reject(409, "idempotency_key_in_use", "a request with this Idempotency-Key is still in progress");
      logCall(recordCall(state, call, result));
      return send(response, result);
    }
    if (state.settings.latencyMs > 0 || state.settings.hold.includes(route)) {
      if (keyed !== null) state.underWay.add(keyed);
      try {
        while (state.settings.hold.includes(route) && !closing.signal.aborted) await new Promise<void>((wake) => state.held.add(wake));
        if (state.settings.latencyMs > 0) await delay(state.settings.latencyMs, undefined, { signal: closing.signal });
      } finally {
        if (keyed !== null) state.underWay.delete(keyed);
      }
      if (closing.signal.aborted) return; // closing: its socket is being destroyed
    }
    const fault = pickFault(state, route);
    if (fault?.kind === "timeout") {
      // never answer: the client gives up, or close() destroys the socket
      logCall(recordCall(state, call, { status: null, outcome: "timeout" }));
      return;
    }
    const result = fault ? fault.result : match.entry.handle(request, state);
    logCall(recordCall(state, call, result));
    send(response, result);
  }

  const server = createServer((incoming, response) => {
    handle(incoming, response).catch((error: unknown) => {
      if (closing.signal.aborted) return;
      process.stderr.write(`provider simulator: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      if (!response.headersSent) send(response, reject(500, "internal_error", "the simulator failed; see its log"));
    });
  });

  await new Promise<void>((resolve, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => {
      server.off("error", fail);
      resolve();
    });
  });

  const bound = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}`,
    port: bound,
    close() {
      closed ??= new Promise<void>((resolve, fail) => {
        closing.abort();
        wakeHeld(state);
        server.close((error) => (error ? fail(error) : resolve()));
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
