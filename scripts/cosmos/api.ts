// The Cosmos DB REST API as @azure/cosmos speaks it: routes, headers and status codes, over the store.
import type { IncomingHttpHeaders } from "node:http";
import type { Kind } from "./faults.ts";
import { applyPatch } from "./patch.ts";
import { QueryError, runQuery, type Doc, type QueryParameter } from "./query.ts";
import { compileSproc, compileUdf, executeSproc, udfsOf } from "./sproc.ts";
import {
  CosmosError,
  badRequest,
  feedStart,
  notFound,
  pkKeyOfHeader,
  preconditionFailed,
  type Container,
  type Rec,
  type ScriptKind,
  type Store,
  type Tx,
} from "./store.ts";

/** `staleDocuments`: a query of one partition answers without its newest so many documents (the `stale` fault). */
export type ApiRequest = { method: string; segments: string[]; headers: IncomingHttpHeaders; body: string; base: string; staleDocuments?: number };
export type ApiResponse = { status: number; body: string; headers: Record<string, string> };

const DEFAULT_FEED_PAGE = 100;

const header = (req: ApiRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};
const isTrue = (req: ApiRequest, name: string) => header(req, name)?.toLowerCase() === "true";
const isQuery = (req: ApiRequest) => isTrue(req, "x-ms-documentdb-isquery") || header(req, "content-type") === "application/query+json";

const ok = (status: number, body: string, headers: Record<string, string> = {}): ApiResponse => ({ status, body, headers });
const json = (status: number, value: unknown, headers: Record<string, string> = {}) => ok(status, JSON.stringify(value), headers);
const withEtag = (status: number, resource: Doc) => json(status, resource, { etag: resource._etag as string });
const docResponse = (status: number, rec: Rec) => ok(status, rec.json, { etag: rec.body._etag as string });

function parseBody(req: ApiRequest): unknown {
  try {
    return req.body === "" ? undefined : JSON.parse(req.body);
  } catch {
    throw badRequest("The request body is not valid JSON.");
  }
}

function parseObject(req: ApiRequest): Doc {
  const body = parseBody(req);
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw badRequest("The request body must be a JSON object.");
  return body as Doc;
}

/** What a request is, for the counters and fault rules. */
export function classify(req: ApiRequest): Kind {
  const [dbs, , colls, , kind, id] = req.segments;
  if (dbs !== "dbs" || colls !== "colls") return "other";
  if (kind === "sprocs") return req.method === "POST" && id !== undefined ? "sproc" : "other";
  if (kind !== "docs") return "other";
  if (id !== undefined) return req.method === "GET" ? "read" : "write";
  if (req.method === "GET") return header(req, "a-im") ? "changefeed" : "query";
  if (header(req, "x-ms-cosmos-is-query-plan-request")) return "other";
  if (isQuery(req)) return "query";
  if (isTrue(req, "x-ms-cosmos-is-batch-request")) return "batch";
  return "write";
}

/** The partition key a request names, for the counters: its value when it is one string (`["pay:…"]`), else the header. */
export function partitionOf(req: ApiRequest): string | undefined {
  const h = header(req, "x-ms-documentdb-partitionkey");
  if (h === undefined) return undefined;
  try {
    const key = JSON.parse(h) as unknown;
    return Array.isArray(key) && key.length === 1 && typeof key[0] === "string" ? key[0] : h;
  } catch {
    return h;
  }
}

/** A feed of resources (`{ _rid, Databases: [...], _count }`), optionally filtered by a query. */
function feed(req: ApiRequest, rid: string, name: string, resources: Doc[]): ApiResponse {
  let items: unknown[] = resources;
  if (req.method === "POST") {
    const { query, parameters } = parseObject(req) as { query?: string; parameters?: QueryParameter[] };
    if (typeof query !== "string") throw badRequest("The query is missing.");
    items = runQuery(query, resources, { parameters }).result;
  }
  return json(200, { _rid: rid, [name]: items, _count: items.length }, { "x-ms-item-count": String(items.length) });
}

const queryPlan = {
  partitionedQueryExecutionInfoVersion: 2,
  queryInfo: {
    distinctType: "None",
    top: null,
    offset: null,
    limit: null,
    orderBy: [],
    orderByExpressions: [],
    groupByExpressions: [],
    groupByAliases: [],
    aggregates: [],
    groupByAliasToAggregateType: {},
    rewrittenQuery: "",
    hasSelectValue: false,
    dCountInfo: null,
    hasNonStreamingOrderBy: false,
  },
  // One partition key range holds everything, and the server runs the whole query: the SDK has nothing to merge.
  queryRanges: [{ min: "", max: "FF", isMinInclusive: true, isMaxInclusive: false }],
};

export type ApiOptions = { sprocTimeoutMs: number };

export class CosmosApi {
  store: Store;
  options: ApiOptions;
  constructor(store: Store, options: ApiOptions) {
    this.store = store;
    this.options = options;
  }

  handle(req: ApiRequest): ApiResponse {
    const s = req.segments;
    const m = req.method;
    if (s.length === 0) return json(200, this.account(req.base));
    if (s[0] === "offers") return json(200, { _rid: "", Offers: [], _count: 0 });
    if (s[0] !== "dbs") throw badRequest(`No route for ${m} /${s.join("/")}.`);
    if (s.length === 1) {
      if (m === "POST" && !isQuery(req)) return withEtag(201, this.store.createDatabase(parseObject(req)).body);
      return feed(req, "", "Databases", [...this.store.databases.values()].map((d) => d.body));
    }
    const dbId = s[1]!;
    if (s.length === 2) {
      if (m === "GET") return withEtag(200, this.store.database(dbId).body);
      if (m === "DELETE") {
        this.store.deleteDatabase(dbId);
        return ok(204, "");
      }
    }
    if (s[2] !== "colls") throw badRequest(`No route for ${m} /${s.join("/")}.`);
    if (s.length === 3) {
      const db = this.store.database(dbId);
      if (m === "POST" && !isQuery(req)) return withEtag(201, this.store.createContainer(dbId, parseObject(req)).body);
      return feed(req, db.body._rid as string, "DocumentCollections", [...db.containers.values()].map((c) => c.body));
    }
    const c = this.store.container(dbId, s[3]!);
    if (s.length === 4) {
      if (m === "GET") return withEtag(200, c.body);
      if (m === "PUT") return withEtag(200, this.store.replaceContainer(dbId, c.id, parseObject(req)).body);
      if (m === "DELETE") {
        this.store.deleteContainer(dbId, c.id);
        return ok(204, "");
      }
    }
    switch (s[4]) {
      case "docs":
        return s.length === 5 ? this.documents(req, c) : this.document(req, c, s[5]!);
      case "sprocs":
      case "udfs":
        return this.scripts(req, c, s[4], s[5]);
      case "triggers":
        if (m === "GET" && s.length === 5) return feed(req, c.rid, "Triggers", []);
        throw badRequest("Triggers are not supported by this emulator.");
      case "pkranges":
        return this.partitionKeyRanges(c);
    }
    throw badRequest(`No route for ${m} /${s.join("/")}.`);
  }

  private account(base: string) {
    const location = [{ name: "emulator", databaseAccountEndpoint: base }];
    return {
      _self: "",
      id: "cosmos-emulator",
      _rid: "cosmos-emulator",
      media: "//media/",
      addresses: "//addresses/",
      _dbs: "//dbs/",
      writableLocations: location,
      readableLocations: location,
      enableMultipleWriteLocations: false,
      userReplicationPolicy: { asyncReplication: false, minReplicaSetSize: 1, maxReplicasetSize: 4 },
      userConsistencyPolicy: { defaultConsistencyLevel: "Session" },
      systemReplicationPolicy: { minReplicaSetSize: 1, maxReplicasetSize: 4 },
      readPolicy: { primaryReadCoefficient: 1, secondaryReadCoefficient: 1 },
      queryEngineConfiguration: JSON.stringify({
        maxSqlQueryInputLength: 262144,
        maxJoinsPerSqlQuery: 5,
        maxLogicalAndPerSqlQuery: 500,
        maxLogicalOrPerSqlQuery: 500,
        maxUdfRefPerSqlQuery: 10,
        maxInExpressionItemsCount: 16000,
        queryMaxInMemorySortDocumentCount: 500,
        maxQueryRequestTimeoutFraction: 0.9,
        sqlAllowNonFiniteNumbers: false,
        sqlAllowAggregateFunctions: true,
        sqlAllowSubQuery: true,
        sqlAllowScalarSubQuery: true,
        allowNewKeywords: true,
        sqlAllowLike: false,
        sqlAllowGroupByClause: false,
        maxSpatialQueryCells: 12,
        spatialMaxGeometryPointCount: 256,
        sqlAllowTop: true,
        enableSpatialIndexing: true,
      }),
    };
  }

  private partitionKeyRanges(c: Container) {
    const range = {
      _rid: c.rid,
      id: "0",
      _etag: '"00000000-0000-0000-0000-000000000000"',
      minInclusive: "",
      maxExclusive: "FF",
      ridPrefix: 0,
      _self: `${c.self}pkranges/${c.rid}/`,
      throughputFraction: 1,
      status: "online",
      parents: [],
      ownedArchivalPKRangeIds: [],
      _ts: c.body._ts,
    };
    return json(200, { _rid: c.rid, PartitionKeyRanges: [range], _count: 1 }, { "x-ms-item-count": "1" });
  }

  /** The request's partition key: the header, or the undefined key `[{}]` the SDK sends when none is given. */
  private scope(req: ApiRequest): string | undefined {
    const h = header(req, "x-ms-documentdb-partitionkey");
    return h === undefined ? undefined : pkKeyOfHeader(h);
  }

  private requiredScope(req: ApiRequest, c: Container): string {
    return this.scope(req) ?? JSON.stringify(c.pkPaths.map(() => ({})));
  }

  /** Runs a synchronous write as one transaction. */
  private inTx<T>(fn: (tx: Tx) => T): T {
    const tx = this.store.begin();
    try {
      const result = fn(tx);
      this.store.commit(tx);
      return result;
    } catch (err) {
      this.store.rollback(tx);
      throw err;
    }
  }

  // ---- /docs

  private documents(req: ApiRequest, c: Container): ApiResponse {
    if (req.method === "GET") {
      const aim = header(req, "a-im");
      if (aim !== undefined) return this.changeFeed(req, c, aim);
      return this.query(req, c, { query: "SELECT * FROM root" });
    }
    if (req.method !== "POST") throw badRequest(`No route for ${req.method} on documents.`);
    if (header(req, "x-ms-cosmos-is-query-plan-request")) return json(200, queryPlan);
    if (isQuery(req)) return this.query(req, c, parseObject(req));
    if (isTrue(req, "x-ms-cosmos-is-batch-request")) return this.batch(req, c);
    const body = parseObject(req);
    const scope = this.scope(req);
    if (isTrue(req, "x-ms-documentdb-is-upsert")) {
      const { rec, created } = this.inTx((tx) => this.store.upsert(tx, c, scope, body, header(req, "if-match")));
      return docResponse(created ? 201 : 200, rec);
    }
    return docResponse(201, this.inTx((tx) => this.store.create(tx, c, scope, body)));
  }

  private document(req: ApiRequest, c: Container, id: string): ApiResponse {
    const pk = this.requiredScope(req, c);
    const ifMatch = header(req, "if-match");
    switch (req.method) {
      case "GET": {
        const rec = this.store.read(c, pk, id);
        if (!rec) throw notFound();
        if (header(req, "if-none-match") === rec.body._etag) return ok(304, "", { etag: rec.body._etag as string });
        return docResponse(200, rec);
      }
      case "PUT":
        return docResponse(200, this.inTx((tx) => this.store.replace(tx, c, pk, id, parseObject(req), ifMatch)));
      case "DELETE":
        this.inTx((tx) => this.store.delete(tx, c, pk, id, ifMatch));
        return ok(204, "");
      case "PATCH": {
        const body = parseBody(req);
        const spec = (Array.isArray(body) ? { operations: body } : body) as { operations?: unknown; condition?: unknown };
        return docResponse(200, this.inTx((tx) => this.patch(tx, c, pk, id, spec, ifMatch)));
      }
    }
    throw badRequest(`No route for ${req.method} on a document.`);
  }

  private patch(tx: Tx, c: Container, pk: string, id: string, spec: { operations?: unknown; condition?: unknown }, ifMatch?: string): Rec {
    const rec = this.store.read(c, pk, id);
    if (!rec) throw notFound();
    if (ifMatch !== undefined && ifMatch !== rec.body._etag) throw preconditionFailed();
    if (typeof spec.condition === "string" && runQuery(`SELECT VALUE 1 ${spec.condition}`, [rec.body]).result.length === 0)
      throw preconditionFailed();
    const body = JSON.parse(rec.json) as Doc;
    applyPatch(body, spec.operations);
    return this.store.replace(tx, c, pk, id, body);
  }

  private query(req: ApiRequest, c: Container, spec: Doc): ApiResponse {
    if (typeof spec.query !== "string") throw badRequest("The query is missing.");
    const max = Number(header(req, "x-ms-max-item-count"));
    const token = header(req, "x-ms-continuation");
    let continuation: { token: string } | null = null;
    if (token) {
      try {
        continuation = JSON.parse(token) as { token: string };
      } catch {
        throw badRequest("The continuation token is invalid.");
      }
    }
    const { result, continuation: next } = runQuery(spec.query, c.docs(this.scope(req), req.staleDocuments), {
      parameters: spec.parameters as QueryParameter[] | undefined,
      maxItemCount: max > 0 ? max : null,
      continuation,
      udf: udfsOf(c),
      compositeIndexes: (c.body.indexingPolicy as { compositeIndexes?: unknown[] } | undefined)?.compositeIndexes,
    });
    const headers: Record<string, string> = { "x-ms-item-count": String(result.length) };
    if (next) headers["x-ms-continuation"] = JSON.stringify(next);
    return ok(200, `{"_rid":${JSON.stringify(c.rid)},"Documents":${JSON.stringify(result)},"_count":${result.length}}`, headers);
  }

  /**
   * Latest-version change feed. The etag (and so the SDK's continuation) is the LSN of the last document returned:
   * the next page starts after it. `If-None-Match: *` starts from now, `If-Modified-Since` from a time.
   */
  private changeFeed(req: ApiRequest, c: Container, aim: string): ApiResponse {
    if (aim.toLowerCase() !== "incremental feed") throw badRequest(`Change feed mode '${aim}' is not supported by this emulator.`);
    const pk = this.scope(req);
    const log = pk === undefined ? c.feed : (c.partitions.get(pk)?.feed ?? []);
    const live = pk === undefined ? (r: Rec) => c.isLive(r) : (r: Rec) => c.partitions.get(pk)?.docs.get(r.id) === r;
    const max = Number(header(req, "x-ms-max-item-count")) > 0 ? Number(header(req, "x-ms-max-item-count")) : DEFAULT_FEED_PAGE;
    const ifNoneMatch = header(req, "if-none-match");
    const since = header(req, "if-modified-since");
    const notModified = (lsn: number) => ok(304, "", { etag: `"${lsn}"` });
    let start = 0;
    let position = this.store.lsn;
    if (ifNoneMatch === "*") return notModified(this.store.lsn);
    if (ifNoneMatch !== undefined) {
      position = Number(ifNoneMatch.replace(/"/g, ""));
      if (!Number.isInteger(position) || position < 0) throw badRequest(`The continuation ${ifNoneMatch} is invalid.`);
      start = feedStart(log, { lsn: position });
    } else if (since !== undefined) {
      const time = Date.parse(since);
      if (Number.isNaN(time)) throw badRequest(`If-Modified-Since '${since}' is not a date.`);
      start = feedStart(log, { time });
    }
    const docs: string[] = [];
    let last = 0;
    for (let i = start; i < log.length && docs.length < max; i++) {
      const r = log[i]!;
      if (!live(r)) continue;
      docs.push(`${r.json.slice(0, -1)},"_lsn":${r.lsn}}`);
      last = r.lsn;
    }
    if (docs.length === 0) return notModified(position);
    return ok(200, `{"_rid":${JSON.stringify(c.rid)},"Documents":[${docs.join(",")}],"_count":${docs.length}}`, {
      etag: `"${last}"`,
      "x-ms-item-count": String(docs.length),
    });
  }

  // ---- transactional batch (atomic) and bulk (non-atomic)

  private batch(req: ApiRequest, c: Container): ApiResponse {
    const ops = parseBody(req);
    if (!Array.isArray(ops) || ops.length === 0 || ops.length > 100) throw badRequest("A batch must carry between 1 and 100 operations.");
    const atomic = isTrue(req, "x-ms-cosmos-batch-atomic");
    const batchPk = this.scope(req);
    if (!atomic) {
      let anyFailed = false;
      const results = ops.map((op) => {
        try {
          return this.inTx((tx) => this.operation(tx, c, batchPk, op as Doc));
        } catch (err) {
          anyFailed = true;
          return failed(err);
        }
      });
      return ok(anyFailed ? 207 : 200, `[${results.join(",")}]`);
    }
    // Atomic: the first failure undoes the others; it keeps its own status and every other operation gets 424.
    const tx = this.store.begin();
    const results: string[] = [];
    for (let i = 0; i < ops.length; i++) {
      try {
        results.push(this.operation(tx, c, batchPk, ops[i] as Doc));
      } catch (err) {
        this.store.rollback(tx);
        const dependency = '{"statusCode":424,"requestCharge":0}';
        const all = ops.map((_, j) => (j === i ? failed(err) : dependency));
        return ok(207, `[${all.join(",")}]`);
      }
    }
    this.store.commit(tx);
    return ok(200, `[${results.join(",")}]`);
  }

  /** One batch operation; its JSON result, or a CosmosError. */
  private operation(tx: Tx, c: Container, batchPk: string | undefined, op: Doc): string {
    const pk = typeof op.partitionKey === "string" ? pkKeyOfHeader(op.partitionKey) : (batchPk ?? JSON.stringify(c.pkPaths.map(() => ({}))));
    if (batchPk !== undefined && pk !== batchPk) throw badRequest("All operations of a batch must target the partition key of the batch.");
    const ifMatch = typeof op.ifMatch === "string" ? op.ifMatch : undefined;
    const body = op.resourceBody as Doc;
    const result = (status: number, rec?: Rec) =>
      rec
        ? `{"statusCode":${status},"requestCharge":1,"eTag":${JSON.stringify(rec.body._etag)},"resourceBody":${rec.json}}`
        : `{"statusCode":${status},"requestCharge":1}`;
    switch (op.operationType) {
      case "Create":
        return result(201, this.store.create(tx, c, pk, objectOf(body)));
      case "Upsert": {
        const { rec, created } = this.store.upsert(tx, c, pk, objectOf(body), ifMatch);
        return result(created ? 201 : 200, rec);
      }
      case "Read": {
        const rec = this.store.read(c, pk, String(op.id));
        if (!rec) throw notFound();
        return result(200, rec);
      }
      case "Replace":
        return result(200, this.store.replace(tx, c, pk, String(op.id), objectOf(body), ifMatch));
      case "Delete":
        this.store.delete(tx, c, pk, String(op.id), ifMatch);
        return result(204);
      case "Patch":
        return result(200, this.patch(tx, c, pk, String(op.id), objectOf(body), ifMatch));
    }
    throw badRequest(`Operation type '${String(op.operationType)}' is not supported in a batch.`);
  }

  // ---- stored procedures and user-defined functions

  private scripts(req: ApiRequest, c: Container, kind: ScriptKind, id: string | undefined): ApiResponse {
    const name = kind === "sprocs" ? "StoredProcedures" : "UserDefinedFunctions";
    const compile = kind === "sprocs" ? compileSproc : compileUdf;
    if (id === undefined) {
      if (req.method === "POST" && !isQuery(req)) {
        const input = parseObject(req);
        if (typeof input.body === "string") compile(input.body);
        const upsert = isTrue(req, "x-ms-documentdb-is-upsert");
        const { body, created } = this.store.putScript(c, kind, input, upsert ? "upsert" : "create");
        return withEtag(created ? 201 : 200, body);
      }
      return feed(req, c.rid, name, [...c.scripts[kind].values()]);
    }
    switch (req.method) {
      case "GET":
        return withEtag(200, this.store.script(c, kind, id));
      case "PUT": {
        const input = parseObject(req);
        if (typeof input.body === "string") compile(input.body);
        return withEtag(200, this.store.putScript(c, kind, input, "replace", id, header(req, "if-match")).body);
      }
      case "DELETE":
        this.store.deleteScript(c, kind, id);
        return ok(204, "");
      case "POST":
        if (kind === "sprocs") return this.execute(req, c, id);
    }
    throw badRequest(`No route for ${req.method} on a script.`);
  }

  private execute(req: ApiRequest, c: Container, id: string): ApiResponse {
    const sproc = this.store.script(c, "sprocs", id);
    const outcome = executeSproc({
      store: this.store,
      c,
      sproc,
      pk: this.requiredScope(req, c),
      argsJson: req.body,
      timeoutMs: this.options.sprocTimeoutMs,
      headers: req.headers,
    });
    const headers: Record<string, string> = {};
    if (isTrue(req, "x-ms-documentdb-script-enable-logging")) headers["x-ms-documentdb-script-log-results"] = encodeURIComponent(outcome.logs.join("\n"));
    return ok(200, outcome.body, headers);
  }
}

function objectOf(body: unknown): Doc {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw badRequest("The operation's resource body must be a JSON object.");
  return body as Doc;
}

function failed(err: unknown): string {
  if (err instanceof QueryError) err = badRequest(err.message);
  if (!(err instanceof CosmosError)) throw err;
  const sub = err.substatus === undefined ? "" : `,"subStatusCode":${err.substatus}`;
  return `{"statusCode":${err.status},"requestCharge":0${sub},"message":${JSON.stringify(err.message)}}`;
}
