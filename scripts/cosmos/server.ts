// The emulator's HTTP server: the Cosmos API on plain http, the /_emulator/ control plane (counters, faults, reset, stats), start and close.
import { randomUUID } from "node:crypto";
import http from "node:http";
import { CosmosApi, classify, partitionOf, type ApiRequest, type ApiResponse } from "./api.ts";
import { Faults, InvalidRule, type FaultRule } from "./faults.ts";
import { FileJournal } from "./persistence.ts";
import { QueryError } from "./query.ts";
import { CosmosError, Store } from "./store.ts";

/** The well-known key of the Cosmos DB emulator; any key is accepted (signatures are not verified). */
export const EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

export type CosmosEmulatorOptions = {
  port?: number;
  host?: string;
  /** Persist to this folder (created if missing); in memory otherwise. */
  dataDir?: string;
  /** One line per request on stderr. */
  log?: boolean;
  /** Time budget of one stored-procedure execution (Cosmos: about 5 s). */
  sprocTimeoutMs?: number;
};

export type CosmosEmulator = { url: string; port: number; close(): Promise<void> };

type Reply = { status: number; body: string; headers?: Record<string, string> };

const jsonReply = (status: number, value: unknown): Reply => ({ status, body: JSON.stringify(value) });

function errorReply(err: unknown): Reply {
  if (err instanceof QueryError) err = new CosmosError(400, "BadRequest", err.message);
  if (err instanceof CosmosError) {
    const headers: Record<string, string> = {};
    if (err.substatus !== undefined) headers["x-ms-substatus"] = String(err.substatus);
    return { status: err.status, body: JSON.stringify({ code: err.code, message: err.message }), headers };
  }
  console.error("cosmos emulator: internal error", err);
  return jsonReply(500, { code: "InternalServerError", message: String((err as Error)?.message ?? err) });
}

function faultReply(rule: FaultRule): Reply {
  if (rule.mode === "429")
    return {
      status: 429,
      body: JSON.stringify({
        code: "TooManyRequests",
        message: "Request rate is large. More Request Units may be needed, so no changes were made. Please retry this request later.",
      }),
      // 3200: the sub-status Cosmos uses when the provisioned request units are exhausted.
      headers: { "x-ms-retry-after-ms": String(rule.retryAfterMs), "x-ms-substatus": "3200" },
    };
  return {
    status: 503,
    body: JSON.stringify({ code: "ServiceUnavailable", message: "Service is currently unavailable (injected by the emulator)." }),
  };
}

function segmentsOf(path: string): string[] | undefined {
  try {
    return path
      .split("/")
      .filter((s) => s !== "")
      .map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

export async function startCosmosEmulator(opts: CosmosEmulatorOptions = {}): Promise<CosmosEmulator> {
  const host = opts.host ?? "127.0.0.1";
  const store = new Store();
  const api = new CosmosApi(store, { sprocTimeoutMs: opts.sprocTimeoutMs ?? 5000 });
  const faults = new Faults();
  let closed = false;

  function control(method: string, segments: string[], query: URLSearchParams, body: string): Reply {
    const route = `${method} /${segments.join("/")}`;
    switch (route) {
      case "GET /_emulator/counters": {
        const partition = query.get("partition");
        return jsonReply(200, partition === null ? faults.counters : faults.countersOf(partition));
      }
      case "POST /_emulator/counters/reset":
        faults.resetCounters();
        return jsonReply(200, faults.counters);
      case "GET /_emulator/faults":
        return jsonReply(200, { rules: faults.list() });
      case "POST /_emulator/faults":
        try {
          return jsonReply(201, faults.add(body === "" ? {} : JSON.parse(body)));
        } catch (err) {
          if (err instanceof InvalidRule || err instanceof SyntaxError) return jsonReply(400, { message: err.message });
          throw err;
        }
      case "DELETE /_emulator/faults":
        faults.clear();
        return jsonReply(200, { rules: [] });
      case "POST /_emulator/reset":
        store.reset();
        return jsonReply(200, { documents: store.documents });
      case "GET /_emulator/stats":
        return jsonReply(200, { memory: process.memoryUsage(), documents: store.documents });
    }
    return jsonReply(404, { message: `No control route ${route}.` });
  }

  function send(res: http.ServerResponse, reply: Reply, started: number, req: http.IncomingMessage) {
    if (res.destroyed) return;
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(reply.body),
      "x-ms-request-charge": "1",
      "x-ms-activity-id": randomUUID(),
      ...reply.headers,
    };
    res.writeHead(reply.status, headers);
    res.end(reply.body);
    if (opts.log) console.error(`${req.method} ${req.url} ${reply.status} ${(performance.now() - started).toFixed(1)}ms`);
  }

  function serve(req: http.IncomingMessage, res: http.ServerResponse, body: string) {
    const started = performance.now();
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const segments = segmentsOf(q < 0 ? url : url.slice(0, q));
    if (!segments) return send(res, jsonReply(400, { code: "BadRequest", message: "Malformed URL." }), started, req);
    if (segments[0] === "_emulator") {
      let reply: Reply;
      try {
        reply = control(req.method ?? "GET", segments, new URLSearchParams(q < 0 ? "" : url.slice(q + 1)), body);
      } catch (err) {
        reply = errorReply(err);
      }
      return send(res, reply, started, req);
    }
    const apiReq: ApiRequest = { method: req.method ?? "GET", segments, headers: req.headers, body, base: `http://${req.headers.host ?? host}/` };
    const decision = faults.decide(classify(apiReq), partitionOf(apiReq));
    apiReq.staleDocuments = decision.staleDocuments;
    const respond = () => {
      if (closed) return;
      let reply: ApiResponse | Reply;
      if (decision.error) reply = faultReply(decision.error);
      else
        try {
          reply = api.handle(apiReq);
        } catch (err) {
          reply = errorReply(err);
        }
      send(res, reply, started, req);
    };
    if (decision.delayMs > 0) setTimeout(respond, decision.delayMs);
    else respond();
  }

  const server = http.createServer({ keepAliveTimeout: 0 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => serve(req, res, chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8")));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // Only once the port is ours: no request is handled before this synchronous replay finishes.
  let journal: FileJournal | undefined;
  try {
    journal = opts.dataDir === undefined ? undefined : new FileJournal(opts.dataDir, store);
  } catch (err) {
    server.close();
    throw err;
  }
  store.journal = journal;
  const port = (server.address() as { port: number }).port;
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;

  return {
    url: `http://${shown}:${port}`,
    port,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      journal?.close();
    },
  };
}
