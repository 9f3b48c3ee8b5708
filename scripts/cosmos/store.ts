// In-memory Cosmos data model: databases, containers, per-partition document indexes, LSN-ordered change-feed logs, undoable transactions.
import { randomBytes } from "node:crypto";
import type { Doc } from "./query.ts";

export class CosmosError extends Error {
  status: number;
  code: string;
  substatus: number | undefined;
  constructor(status: number, code: string, message: string, substatus?: number) {
    super(message);
    this.status = status;
    this.code = code;
    this.substatus = substatus;
  }
}

export const notFound = () =>
  new CosmosError(404, "NotFound", "Entity with the specified id does not exist in the system. More info: https://aka.ms/cosmosdb-tsg-not-found");
export const conflict = () =>
  new CosmosError(409, "Conflict", "Entity with the specified id already exists in the system. More info: https://aka.ms/cosmosdb-tsg-conflict");
export const preconditionFailed = () =>
  new CosmosError(412, "PreconditionFailed", "Operation cannot be performed because one of the specified precondition is not met.");
export const badRequest = (message: string) => new CosmosError(400, "BadRequest", message);

/** One stored version of a document. Never mutated once stored: every write makes a new Rec. */
export type Rec = { id: string; pk: string; body: Doc; json: string; lsn: number; time: number };

export class Partition {
  key: string;
  docs = new Map<string, Rec>();
  /** Every version written, in LSN order; entries superseded or deleted are stale until compacted. */
  feed: Rec[] = [];
  constructor(key: string) {
    this.key = key;
  }
}

export type ScriptKind = "sprocs" | "udfs";

export class Container {
  db: Database;
  id: string;
  rid: string;
  body: Doc;
  pkPaths: string[][];
  uniqueKeys: string[][][];
  partitions = new Map<string, Partition>();
  feed: Rec[] = [];
  count = 0;
  scripts: Record<ScriptKind, Map<string, Doc>> = { sprocs: new Map(), udfs: new Map() };
  constructor(db: Database, body: Doc) {
    this.db = db;
    this.id = body.id as string;
    this.rid = body._rid as string;
    this.body = body;
    const pk = body.partitionKey as { paths?: string[] } | undefined;
    this.pkPaths = (pk?.paths ?? []).map(parsePath);
    const unique = (body.uniqueKeyPolicy as { uniqueKeys?: { paths: string[] }[] } | undefined)?.uniqueKeys ?? [];
    this.uniqueKeys = unique.map((u) => u.paths.map(parsePath));
  }
  get self() {
    return this.body._self as string;
  }
  partition(key: string): Partition {
    let p = this.partitions.get(key);
    if (!p) this.partitions.set(key, (p = new Partition(key)));
    return p;
  }
  pkKeyOf(body: Doc): string {
    return JSON.stringify(this.pkPaths.map((path) => valueAt(body, path) ?? {}));
  }
  isLive(rec: Rec): boolean {
    return this.partitions.get(rec.pk)?.docs.get(rec.id) === rec;
  }
  /** All documents of one partition, or of the container, for the query engine; of a partition, without its `stale` newest. */
  docs(pkKey?: string, stale = 0): Doc[] {
    const out: Doc[] = [];
    if (pkKey !== undefined) {
      const p = this.partitions.get(pkKey);
      const recs = p ? [...p.docs.values()] : [];
      const newest = new Set(stale > 0 ? recs.toSorted((a, b) => b.lsn - a.lsn).slice(0, stale) : []);
      for (const r of recs) if (!newest.has(r)) out.push(r.body);
    } else for (const p of this.partitions.values()) for (const r of p.docs.values()) out.push(r.body);
    return out;
  }
}

export class Database {
  id: string;
  body: Doc;
  containers = new Map<string, Container>();
  constructor(body: Doc) {
    this.id = body.id as string;
    this.body = body;
  }
}

function parsePath(path: string): string[] {
  return path
    .split("/")
    .slice(1)
    .map((s) => (s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s));
}

function valueAt(doc: unknown, path: string[]): unknown {
  let v = doc;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Doc)[k];
  }
  return v;
}

/** The partition key header (`["a"]`, `[{}]` for none) in the same canonical form as Container.pkKeyOf. */
export function pkKeyOfHeader(header: string): string {
  try {
    const parsed = JSON.parse(header) as unknown;
    return JSON.stringify(Array.isArray(parsed) ? parsed : [parsed]);
  } catch {
    throw badRequest(`Partition key ${header} is invalid.`);
  }
}

/** Resource ids are base64 with '-' for '/', as in Cosmos, so that they can sit in a link. */
const toRid = (bytes: Buffer) => bytes.toString("base64").replace(/\//g, "-");
const fromRid = (rid: string) => Buffer.from(rid.replace(/-/g, "/"), "base64");
const MAX_DOCUMENT_BYTES = 2 * 1024 * 1024;

type Write = { c: Container; part: Partition; id: string; prev: Rec | undefined; next: Rec | undefined };

/** Writes apply at once (execution is synchronous, so nobody else can observe them) and are undone on rollback. */
export class Tx {
  writes: Write[] = [];
  lsnAtStart: number;
  constructor(lsn: number) {
    this.lsnAtStart = lsn;
  }
}

export type Journal = {
  meta(line: Doc): void;
  writes(c: Container, writes: readonly Write[]): void;
};

export class Store {
  databases = new Map<string, Database>();
  /** Highest committed log sequence number, global across containers; the change-feed etags are LSNs. */
  lsn = 0;
  lastTime = 0;
  documents = 0;
  journal: Journal | undefined;

  now(): number {
    return (this.lastTime = Math.max(this.lastTime, Date.now()));
  }

  /** System properties of a metadata resource; its etag is random, as only documents take LSNs. */
  stamp(body: Doc, self: string) {
    body._self = `${self}${body._rid as string}/`;
    body._etag = `"${randomBytes(16).toString("hex")}"`;
    body._ts = Math.floor(this.now() / 1000);
  }

  reset() {
    this.databases.clear();
    this.documents = 0;
    this.journal?.meta({ t: "reset" });
  }

  // ---- databases and containers

  database(id: string): Database {
    const db = this.databases.get(id);
    if (!db) throw notFound();
    return db;
  }

  container(dbId: string, id: string): Container {
    const c = this.database(dbId).containers.get(id);
    if (!c) throw notFound();
    return c;
  }

  createDatabase(input: Doc): Database {
    const id = validId(input.id);
    if (this.databases.has(id)) throw conflict();
    const body: Doc = { id, _rid: toRid(randomBytes(4)) };
    this.stamp(body, "dbs/");
    Object.assign(body, { _colls: "colls/", _users: "users/" });
    const db = this.loadDatabase(body);
    this.journal?.meta({ t: "db", body });
    return db;
  }

  loadDatabase(body: Doc): Database {
    const db = new Database(body);
    this.databases.set(db.id, db);
    return db;
  }

  deleteDatabase(id: string) {
    const db = this.database(id);
    for (const c of db.containers.values()) this.documents -= c.count;
    this.databases.delete(id);
    this.journal?.meta({ t: "-db", id });
  }

  createContainer(dbId: string, input: Doc): Container {
    const db = this.database(dbId);
    const id = validId(input.id);
    if (db.containers.has(id)) throw conflict();
    const pk = (input.partitionKey as Doc | undefined) ?? { paths: ["/id"] };
    const body: Doc = {
      indexingPolicy: {
        indexingMode: "consistent",
        automatic: true,
        includedPaths: [{ path: "/*" }],
        excludedPaths: [{ path: '/"_etag"/?' }],
      },
      conflictResolutionPolicy: { mode: "LastWriterWins", conflictResolutionPath: "/_ts", conflictResolutionProcedure: "" },
      geospatialConfig: { type: "Geography" },
      ...input,
      id,
      partitionKey: { kind: "Hash", version: 2, ...pk },
      _rid: toRid(Buffer.concat([fromRid(db.body._rid as string), randomBytes(4)])),
    };
    this.stamp(body, `${db.body._self}colls/`);
    Object.assign(body, { _docs: "docs/", _sprocs: "sprocs/", _triggers: "triggers/", _udfs: "udfs/", _conflicts: "conflicts/" });
    const c = this.loadContainer(db, body);
    this.journal?.meta({ t: "coll", db: dbId, body });
    return c;
  }

  loadContainer(db: Database, body: Doc): Container {
    const c = new Container(db, body);
    db.containers.set(c.id, c);
    return c;
  }

  replaceContainer(dbId: string, id: string, input: Doc): Container {
    const c = this.container(dbId, id);
    if (input.id !== id) throw badRequest("The id of the container cannot be changed.");
    const paths = (input.partitionKey as { paths?: unknown } | undefined)?.paths;
    if (paths !== undefined && JSON.stringify(paths) !== JSON.stringify((c.body.partitionKey as Doc).paths))
      throw badRequest("Partition key paths of a container cannot be changed.");
    const body: Doc = { ...c.body, ...input, partitionKey: c.body.partitionKey, _rid: c.rid };
    this.stamp(body, `${c.db.body._self}colls/`);
    c.body = body;
    this.journal?.meta({ t: "coll", db: dbId, body });
    return c;
  }

  deleteContainer(dbId: string, id: string) {
    const c = this.container(dbId, id);
    this.documents -= c.count;
    c.db.containers.delete(id);
    this.journal?.meta({ t: "-coll", db: dbId, id });
  }

  // ---- stored procedures and user-defined functions

  script(c: Container, kind: ScriptKind, id: string): Doc {
    const s = c.scripts[kind].get(id);
    if (!s) throw notFound();
    return s;
  }

  putScript(c: Container, kind: ScriptKind, input: Doc, mode: "create" | "replace" | "upsert", pathId?: string, ifMatch?: string): { body: Doc; created: boolean } {
    const id = validId(input.id);
    if (pathId !== undefined && pathId !== id) throw badRequest("The id in the body does not match the id in the URL.");
    if (typeof input.body !== "string") throw badRequest("The script body must be a string.");
    const existing = c.scripts[kind].get(id);
    if (mode === "create" && existing) throw conflict();
    if (mode === "replace" && !existing) throw notFound();
    if (ifMatch !== undefined && ifMatch !== existing?._etag) throw preconditionFailed();
    const body: Doc = { body: input.body, id, _rid: (existing?._rid as string) ?? toRid(randomBytes(12)) };
    this.stamp(body, `${c.self}${kind}/`);
    c.scripts[kind].set(id, body);
    this.journal?.meta({ t: "script", db: c.db.id, coll: c.id, kind, body });
    return { body, created: !existing };
  }

  deleteScript(c: Container, kind: ScriptKind, id: string) {
    this.script(c, kind, id);
    c.scripts[kind].delete(id);
    this.journal?.meta({ t: "-script", db: c.db.id, coll: c.id, kind, id });
  }

  // ---- documents: every write goes through a Tx

  begin(): Tx {
    return new Tx(this.lsn);
  }

  commit(tx: Tx) {
    if (tx.writes.length === 0) return;
    const byContainer = new Map<Container, Write[]>();
    for (const w of tx.writes) {
      const list = byContainer.get(w.c);
      if (list) list.push(w);
      else byContainer.set(w.c, [w]);
    }
    for (const [c, writes] of byContainer) {
      this.journal?.writes(c, writes);
      compactFeeds(c, writes);
    }
  }

  rollback(tx: Tx) {
    for (let i = tx.writes.length - 1; i >= 0; i--) {
      const { c, part, id, prev, next } = tx.writes[i]!;
      if (next) {
        part.feed.pop();
        c.feed.pop();
      }
      if (prev) part.docs.set(id, prev);
      else part.docs.delete(id);
      const delta = (prev ? 1 : 0) - (next ? 1 : 0);
      c.count += delta;
      this.documents += delta;
    }
    this.lsn = tx.lsnAtStart;
    tx.writes.length = 0;
  }

  private write(tx: Tx, c: Container, part: Partition, id: string, next: Rec | undefined) {
    const prev = part.docs.get(id);
    if (next) {
      part.docs.set(id, next);
      part.feed.push(next);
      c.feed.push(next);
    } else part.docs.delete(id);
    const delta = (next ? 1 : 0) - (prev ? 1 : 0);
    c.count += delta;
    this.documents += delta;
    tx.writes.push({ c, part, id, prev, next });
  }

  /** Replays a journaled write (no transaction, no journal). */
  load(c: Container, pk: string, id: string, lsn: number, time: number, body: Doc | null) {
    const part = c.partition(pk);
    const prev = part.docs.get(id);
    if (body) {
      const rec: Rec = { id, pk, body, json: JSON.stringify(body), lsn, time };
      part.docs.set(id, rec);
      part.feed.push(rec);
      c.feed.push(rec);
    } else part.docs.delete(id);
    const delta = (body ? 1 : 0) - (prev ? 1 : 0);
    c.count += delta;
    this.documents += delta;
    this.lsn = Math.max(this.lsn, lsn);
    this.lastTime = Math.max(this.lastTime, time);
  }

  private newRec(c: Container, pk: string, body: Doc, rid: string | undefined): Rec {
    const time = this.now();
    const lsn = this.lsn + 1;
    const docRid = rid ?? docRidOf(c.rid, lsn);
    body._rid = docRid;
    body._self = `${c.self}docs/${docRid}/`;
    body._etag = etagOf(lsn, time);
    body._attachments = "attachments/";
    body._ts = Math.floor(time / 1000);
    const json = JSON.stringify(body);
    if (json.length > MAX_DOCUMENT_BYTES / 4 && Buffer.byteLength(json) > MAX_DOCUMENT_BYTES)
      throw new CosmosError(413, "RequestEntityTooLarge", "Request size is too large: a document must be at most 2 MB.");
    this.lsn = lsn;
    return { id: body.id as string, pk, body, json, lsn, time };
  }

  /** Checks the partition key of a body against the one the request is scoped to, and returns the body's. */
  private partitionOf(c: Container, body: Doc, scope: string | undefined): string {
    const pk = c.pkKeyOf(body);
    if (scope !== undefined && scope !== pk)
      throw badRequest("PartitionKey extracted from document doesn't match the one specified in the header. Learn more: https://aka.ms/CosmosDB/sql/errors/wrong-pk-value");
    return pk;
  }

  private checkUnique(c: Container, part: Partition, body: Doc) {
    for (const paths of c.uniqueKeys) {
      const key = JSON.stringify(paths.map((p) => valueAt(body, p)));
      for (const r of part.docs.values())
        if (r.id !== body.id && JSON.stringify(paths.map((p) => valueAt(r.body, p))) === key)
          throw new CosmosError(409, "Conflict", "Unique index constraint violation.");
    }
  }

  read(c: Container, pk: string, id: string): Rec | undefined {
    return c.partitions.get(pk)?.docs.get(id);
  }

  create(tx: Tx, c: Container, scope: string | undefined, body: Doc): Rec {
    validId(body.id);
    const pk = this.partitionOf(c, body, scope);
    const part = c.partition(pk);
    if (part.docs.has(body.id as string)) throw conflict();
    if (c.uniqueKeys.length) this.checkUnique(c, part, body);
    const rec = this.newRec(c, pk, body, undefined);
    this.write(tx, c, part, rec.id, rec);
    return rec;
  }

  upsert(tx: Tx, c: Container, scope: string | undefined, body: Doc, ifMatch?: string): { rec: Rec; created: boolean } {
    validId(body.id);
    const pk = this.partitionOf(c, body, scope);
    const prev = c.partitions.get(pk)?.docs.get(body.id as string);
    if (!prev) return { rec: this.create(tx, c, pk, body), created: true };
    return { rec: this.replace(tx, c, pk, prev.id, body, ifMatch), created: false };
  }

  replace(tx: Tx, c: Container, scope: string | undefined, id: string, body: Doc, ifMatch?: string): Rec {
    if (body.id !== id) throw badRequest("The id in the body does not match the id in the URL.");
    const pk = this.partitionOf(c, body, scope);
    const part = c.partitions.get(pk);
    const prev = part?.docs.get(id);
    if (!part || !prev) throw notFound();
    if (ifMatch !== undefined && ifMatch !== prev.body._etag) throw preconditionFailed();
    if (c.uniqueKeys.length) this.checkUnique(c, part, body);
    const rec = this.newRec(c, pk, body, prev.body._rid as string);
    this.write(tx, c, part, id, rec);
    return rec;
  }

  delete(tx: Tx, c: Container, pk: string, id: string, ifMatch?: string): Rec {
    const part = c.partitions.get(pk);
    const prev = part?.docs.get(id);
    if (!part || !prev) throw notFound();
    if (ifMatch !== undefined && ifMatch !== prev.body._etag) throw preconditionFailed();
    this.write(tx, c, part, id, undefined);
    return prev;
  }
}

function compactFeeds(c: Container, writes: readonly Write[]) {
  if (c.feed.length > 2 * c.count + 1024) c.feed = c.feed.filter((r) => c.isLive(r));
  for (const { part } of writes)
    if (part.feed.length > 2 * part.docs.size + 64) part.feed = part.feed.filter((r) => part.docs.get(r.id) === r);
}

function validId(id: unknown): string {
  if (typeof id !== "string" || id === "") throw badRequest("The input content is invalid because the required properties - 'id; ' - are missing");
  if (id.length > 255 || /[/\\?#]/.test(id)) throw badRequest(`The resource name '${id}' is invalid: it must not contain '/', '\\', '?' or '#' and be at most 255 characters.`);
  return id;
}

export function etagOf(lsn: number, time: number): string {
  return `"${lsn.toString(16).padStart(8, "0")}-0000-0000-0000-${Math.floor(time / 1000).toString(16).padStart(8, "0")}0000"`;
}

/** Document _rid: the container's 8 bytes then the creating LSN, as Cosmos lays out 16-byte document rids. */
function docRidOf(containerRid: string, lsn: number): string {
  const buf = Buffer.alloc(16);
  fromRid(containerRid).copy(buf, 0, 0, 8);
  buf.writeBigUInt64BE(BigInt(lsn), 8);
  return toRid(buf);
}

/** Index of the first entry after `lsn` (or at/after `time`), by binary search over an LSN-ordered feed. */
export function feedStart(feed: readonly Rec[], from: { lsn: number } | { time: number }): number {
  let lo = 0;
  let hi = feed.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const r = feed[mid]!;
    const before = "lsn" in from ? r.lsn <= from.lsn : r.time < from.time;
    if (before) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
