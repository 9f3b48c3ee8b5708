// Stored procedures: each body compiled once into a reusable node:vm context, run with Cosmos's server-side API (getContext(), __), all writes undone on failure.
import { randomUUID } from "node:crypto";
import vm from "node:vm";
import { instrument } from "./instrument.ts";
import { QueryError, runQuery, type Doc, type QueryParameter } from "./query.ts";
import { CosmosError, badRequest, notFound, type Container, type Rec, type Store, type Tx } from "./store.ts";

type Callback = (err: unknown, ...results: unknown[]) => void;

/** One body, compiled once. Its context is reused: globals a run adds or replaces are put back after it. */
type Compiled = {
  script: vm.Script;
  global: Record<string, unknown>;
  builtinNames: string[];
  builtinValues: unknown[];
  JSON: JSON;
  Error: ErrorConstructor;
  onRejected: (promise: unknown, report: (error: unknown) => void) => void;
};

type Exec = {
  store: Store;
  c: Container;
  pk: string;
  tx: Tx;
  compiled: Compiled;
  args: unknown[];
  body: unknown;
  logs: string[];
  queue: (() => void)[];
  next: number;
  softDeadline: number;
  deadline: number;
  ticks: number;
  expired: boolean;
  failure: { error: unknown } | undefined;
  requestHeaders: Record<string, string | string[] | undefined>;
};

export type SprocOutcome = { body: string; logs: string[] };

const ErrorCodes = Object.freeze({
  BadRequest: 400,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  PreconditionFailed: 412,
  RequestEntityTooLarge: 413,
  RetryWith: 449,
  InternalServerError: 500,
});

let current: Exec | undefined;

function exec(): Exec {
  if (!current) throw new Error("The stored procedure API is only available while the procedure runs.");
  return current;
}

function toScript(ex: Exec, value: unknown): unknown {
  return value === undefined ? undefined : ex.compiled.JSON.parse(JSON.stringify(value));
}

function scriptError(ex: Exec, err: CosmosError): Error {
  const e = new ex.compiled.Error(err.message) as Error & { number: number; body: string; substatus?: number };
  e.number = err.status;
  e.body = JSON.stringify({ code: err.code, message: err.message });
  if (err.substatus !== undefined) e.substatus = err.substatus;
  return e;
}

function optionsAndCallback(a: unknown, b: unknown): [Record<string, unknown>, Callback | undefined] {
  if (typeof a === "function") return [{}, a as Callback];
  return [(a as Record<string, unknown>) ?? {}, typeof b === "function" ? (b as Callback) : undefined];
}

/**
 * Runs one operation of the collection API: not accepted (false) once the run is near its time budget, as in Cosmos;
 * the callback is queued and invoked after the current script turn; a failure without callback aborts the run.
 */
function operate(cb: Callback | undefined, op: (ex: Exec) => unknown[]): boolean {
  const ex = exec();
  const now = performance.now();
  if (ex.expired || now > ex.deadline) expire(ex);
  if (now > ex.softDeadline) return false;
  let results: unknown[];
  try {
    results = op(ex);
  } catch (err) {
    if (!(err instanceof CosmosError || err instanceof QueryError)) throw err;
    const e = scriptError(ex, err instanceof QueryError ? badRequest(err.message) : err);
    ex.queue.push(cb ? () => cb(e) : () => { throw e; });
    return true;
  }
  if (cb) ex.queue.push(() => cb(undefined, ...results));
  return true;
}

function docIdOf(ex: Exec, link: unknown): string {
  if (typeof link !== "string") throw badRequest("A document link must be a string.");
  const m = /\/colls\/([^/]+)\/docs\/([^/]+)\/?$/.exec(link);
  if (!m) throw badRequest(`'${link}' is not a document link.`);
  const segment = decodeURIComponent(m[2]!);
  if (m[1] !== ex.c.rid) return segment;
  for (const r of ex.c.partitions.get(ex.pk)?.docs.values() ?? []) if (r.body._rid === segment) return r.id;
  throw notFound();
}

function docOf(ex: Exec, doc: unknown, options: Record<string, unknown>): Doc {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw badRequest("The document must be a JSON object.");
  const body = JSON.parse(JSON.stringify(doc)) as Doc;
  if (body.id === undefined && !options.disableAutomaticIdGeneration) body.id = randomUUID();
  return body;
}

const readRec = (ex: Exec, rec: Rec) => ex.compiled.JSON.parse(rec.json) as unknown;

function query(ex: Exec, spec: unknown, options: Record<string, unknown>): unknown[] {
  const text = typeof spec === "string" ? spec : (spec as { query?: unknown })?.query;
  if (typeof text !== "string") throw badRequest("The query must be a string or a {query, parameters} object.");
  const parameters = typeof spec === "string" ? undefined : ((spec as { parameters?: QueryParameter[] }).parameters ?? undefined);
  const pageSize = typeof options.pageSize === "number" && options.pageSize > 0 ? options.pageSize : null;
  const token = typeof options.continuation === "string" ? { token: options.continuation } : null;
  const { result, continuation } = runQuery(text, ex.c.docs(ex.pk), {
    parameters,
    maxItemCount: pageSize,
    continuation: token,
    udf: udfsOf(ex.c),
  });
  return [toScript(ex, result), { continuation: continuation?.token }];
}

type Step = (docs: unknown[]) => unknown[];

function fluent(ex: Exec, steps: Step[]): unknown[] {
  let docs: unknown[] = [];
  for (const r of ex.c.partitions.get(ex.pk)?.docs.values() ?? []) docs.push(readRec(ex, r));
  for (const step of steps) docs = step(docs);
  return [docs, {}];
}

const sortStep = (key: (d: unknown) => unknown, desc: boolean): Step => (docs) =>
  docs.slice().sort((a, b) => {
    const x = key(a) as number;
    const y = key(b) as number;
    return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1);
  });
const selector = (s: unknown) => (typeof s === "function" ? (s as (d: unknown) => unknown) : (d: unknown) => (d as Doc)?.[s as string]);

const stepsOf = {
  filter: (f: unknown): Step => (docs) => docs.filter((d) => (f as (d: unknown) => unknown)(d)),
  map: (f: unknown): Step => (docs) => docs.map((d) => (f as (d: unknown) => unknown)(d)),
  pluck: (p: unknown): Step => (docs) => docs.map((d) => (d as Doc)?.[p as string]),
  flatten: (): Step => (docs) => docs.flatMap((d) => (Array.isArray(d) ? d : [d])),
  sortBy: (s: unknown): Step => sortStep(selector(s), false),
  sortByDescending: (s: unknown): Step => sortStep(selector(s), true),
};

function chain(steps: Step[]): unknown {
  const api: Record<string, unknown> = {
    value(a?: unknown, b?: unknown) {
      const [, cb] = optionsAndCallback(a, b);
      return operate(cb, (ex) => fluent(ex, steps));
    },
  };
  for (const [name, make] of Object.entries(stepsOf)) api[name] = (arg: unknown) => chain([...steps, make(arg)]);
  return Object.freeze(api);
}

const collection = Object.freeze({
  getSelfLink: () => exec().c.self,
  getAltLink: () => `dbs/${exec().c.db.id}/colls/${exec().c.id}`,
  queryDocuments(_link: unknown, spec: unknown, a?: unknown, b?: unknown) {
    const [options, cb] = optionsAndCallback(a, b);
    return operate(cb, (ex) => query(ex, spec, options));
  },
  readDocuments(_link: unknown, a?: unknown, b?: unknown) {
    const [options, cb] = optionsAndCallback(a, b);
    return operate(cb, (ex) => query(ex, "SELECT * FROM root", options));
  },
  readDocument(link: unknown, a?: unknown, b?: unknown) {
    const [, cb] = optionsAndCallback(a, b);
    return operate(cb, (ex) => {
      const rec = ex.store.read(ex.c, ex.pk, docIdOf(ex, link));
      if (!rec) throw notFound();
      return [readRec(ex, rec), {}];
    });
  },
  createDocument(_link: unknown, doc: unknown, a?: unknown, b?: unknown) {
    const [options, cb] = optionsAndCallback(a, b);
    return operate(cb, (ex) => [readRec(ex, ex.store.create(ex.tx, ex.c, ex.pk, docOf(ex, doc, options))), {}]);
  },
  upsertDocument(_link: unknown, doc: unknown, a?: unknown, b?: unknown) {
    const [options, cb] = optionsAndCallback(a, b);
    return operate(cb, (ex) => {
      const etag = typeof options.etag === "string" ? options.etag : undefined;
      return [readRec(ex, ex.store.upsert(ex.tx, ex.c, ex.pk, docOf(ex, doc, options), etag).rec), {}];
    });
  },
  replaceDocument(link: unknown, doc: unknown, a?: unknown, b?: unknown) {
    const [options, cb] = optionsAndCallback(a, b);
    return operate(cb, (ex) => {
      const etag = typeof options.etag === "string" ? options.etag : undefined;
      const rec = ex.store.replace(ex.tx, ex.c, ex.pk, docIdOf(ex, link), docOf(ex, doc, { disableAutomaticIdGeneration: true }), etag);
      return [readRec(ex, rec), {}];
    });
  },
  deleteDocument(link: unknown, a?: unknown, b?: unknown) {
    const [options, cb] = optionsAndCallback(a, b);
    return operate(cb, (ex) => {
      const etag = typeof options.etag === "string" ? options.etag : undefined;
      ex.store.delete(ex.tx, ex.c, ex.pk, docIdOf(ex, link), etag);
      return [{}];
    });
  },
  chain: () => chain([]),
  ...Object.fromEntries(
    Object.entries(stepsOf).map(([name, make]) => [
      name,
      (arg: unknown, a?: unknown, b?: unknown) => {
        const [, cb] = optionsAndCallback(a, b);
        return operate(cb, (ex) => fluent(ex, [make(arg)]));
      },
    ]),
  ),
});

const response = Object.freeze({
  getBody: () => exec().body,
  setBody: (v: unknown) => void (exec().body = v),
  appendBody: (s: unknown) => void (exec().body = String(exec().body ?? "") + String(s)),
  getValue: () => exec().body,
  setValue: (v: unknown) => void (exec().body = v),
  getMaxResponseBodySize: () => 2 * 1024 * 1024,
  getCurrentResponseBodySize: () => JSON.stringify(exec().body ?? "").length,
});

const request = Object.freeze({
  getBody: () => exec().args,
  getValue: () => exec().args,
  getRequestHeader: (name: string) => exec().requestHeaders[String(name).toLowerCase()],
  getOperationType: () => "ExecuteJavaScript",
});

const context = Object.freeze({
  getCollection: () => collection,
  getRequest: () => request,
  getResponse: () => response,
});

const scriptConsole = Object.freeze({
  log: (...a: unknown[]) => void exec().logs.push(a.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(" ")),
});

function expire(ex: Exec): never {
  ex.expired = true;
  throw new ex.compiled.Error("The stored procedure exceeded its time budget.");
}

/** Called by the instrumented script at every loop iteration and function entry. */
function budget(): void {
  const ex = current;
  if (ex && (ex.expired || ((++ex.ticks & 15) === 0 && performance.now() > ex.deadline))) expire(ex);
}

function drain(): void {
  const ex = exec();
  while (ex.next < ex.queue.length) ex.queue[ex.next++]!();
}

function runEntry(fn: unknown): void {
  const ex = exec();
  if (typeof fn !== "function") throw new ex.compiled.Error("The stored procedure body is not a function.");
  const r = (fn as (...a: unknown[]) => unknown).apply(undefined, ex.args);
  if (r && typeof (r as Promise<unknown>).then === "function") ex.compiled.onRejected(r, (error) => void (ex.failure ??= { error }));
  drain();
}

const drainScript = new vm.Script("__drain()");

/** Cosmos scripts may write `new Error(404, "message")`: the number becomes the error's `number` (the sub-status). */
const COSMOS_ERROR = `(function (E) {
  function Error(a, b) {
    if (typeof a === "number" && typeof b === "string") { var e = new E(b); e.number = a; return e; }
    return new.target ? Reflect.construct(E, arguments, new.target) : E.apply(this, arguments);
  }
  Object.setPrototypeOf(Error, E);
  Error.prototype = E.prototype;
  return Error;
})(Error)`;
const compiledByBody = new Map<string, Compiled>();
const COMPILED_LIMIT = 256;

/** The body as a script calling `__run(entry)`, with budget checks inserted. */
function scriptOf(body: string): vm.Script {
  // A single function (expression or declaration), or else a script whose first declared function is the entry point.
  const name = /function\s+([A-Za-z_$][\w$]*)/.exec(body)?.[1] ?? "undefined";
  const forms = [`__run((\n${body}\n))`, `__run((function () {\n${body}\n;return ${name};})())`];
  let error: unknown;
  for (const form of forms) {
    try {
      return new vm.Script(instrument(form, "__budget"), { filename: "sproc.js" });
    } catch (err) {
      error ??= err;
    }
  }
  throw badRequest(`Encountered exception while compiling Javascript. Exception = ${String(error)}`);
}

/** Compiles a body (cached by its text); a syntax error is a 400, as Cosmos answers at creation. */
export function compileSproc(body: string): Compiled {
  let compiled = compiledByBody.get(body);
  if (compiled) return compiled;
  const script = scriptOf(body);
  // DONT_CONTEXTIFY: an ordinary global object, much cheaper to inspect after each run than a contextified one.
  const global = vm.createContext(vm.constants.DONT_CONTEXTIFY, {
    microtaskMode: "afterEvaluate",
    codeGeneration: { strings: false, wasm: false },
  }) as Record<string, unknown>;
  global.Error = vm.runInContext(COSMOS_ERROR, global);
  const builtinNames = Object.getOwnPropertyNames(global).filter((k) => "value" in Object.getOwnPropertyDescriptor(global, k)!);
  const api = { getContext: () => context, __: collection, ErrorCodes, console: scriptConsole, __run: runEntry, __drain: drain, __budget: budget };
  for (const [k, value] of Object.entries(api)) Object.defineProperty(global, k, { value, enumerable: false, writable: false, configurable: false });
  compiled = {
    script,
    global,
    builtinNames,
    builtinValues: builtinNames.map((k) => global[k]),
    JSON: global.JSON as JSON,
    Error: global.Error as ErrorConstructor,
    // A reaction runs on the microtask queue of its handler's realm: the handler must be the context's, not ours.
    onRejected: vm.runInContext("(function (p, report) { p.then(undefined, function (e) { report(e); }); })", global),
  };
  if (compiledByBody.size >= COMPILED_LIMIT) compiledByBody.delete(compiledByBody.keys().next().value as string);
  compiledByBody.set(body, compiled);
  return compiled;
}

/**
 * Puts the context's globals back as they were before the run, so runs do not leak state into each other:
 * globals a run adds (they are enumerable; the built-ins are not) are deleted, built-ins it replaced are restored.
 * Not undone: changes inside built-in objects (e.g. a method added to Array.prototype).
 */
function restoreGlobals({ global, builtinNames, builtinValues }: Compiled) {
  for (const k of Object.keys(global)) if (!Reflect.deleteProperty(global, k)) Reflect.set(global, k, undefined);
  for (let i = 0; i < builtinNames.length; i++)
    if (global[builtinNames[i]!] !== builtinValues[i]) Reflect.set(global, builtinNames[i]!, builtinValues[i]);
}

export type SprocRequest = {
  store: Store;
  c: Container;
  sproc: Doc;
  pk: string;
  argsJson: string;
  timeoutMs: number;
  headers: Record<string, string | string[] | undefined>;
};

/** Executes a stored procedure as one transaction: committed if it completes, rolled back if it throws or runs out of time. */
export function executeSproc(req: SprocRequest): SprocOutcome {
  const compiled = compileSproc(req.sproc.body as string);
  let parsed: unknown;
  try {
    parsed = req.argsJson.trim() === "" ? [] : (compiled.JSON.parse(req.argsJson) as unknown);
  } catch {
    throw badRequest("The stored procedure parameters must be a JSON array.");
  }
  const tx = req.store.begin();
  const started = performance.now();
  const ex: Exec = {
    store: req.store,
    c: req.c,
    pk: req.pk,
    tx,
    compiled,
    args: Array.isArray(parsed) ? parsed : parsed === null ? [] : [parsed],
    body: undefined,
    logs: [],
    queue: [],
    next: 0,
    softDeadline: started + req.timeoutMs * 0.8,
    deadline: started + req.timeoutMs,
    ticks: 0,
    expired: false,
    failure: undefined,
    requestHeaders: req.headers,
  };
  current = ex;
  try {
    compiled.script.runInContext(compiled.global, { displayErrors: false });
    // Promise continuations run after each evaluation and may have queued more callbacks.
    while (ex.next < ex.queue.length && !ex.expired) drainScript.runInContext(compiled.global, { displayErrors: false });
    if (ex.expired) throw TIMED_OUT;
    if (ex.failure) throw ex.failure.error;
    const body = ex.body === undefined ? "" : JSON.stringify(ex.body);
    req.store.commit(tx);
    return { body, logs: ex.logs };
  } catch (err) {
    req.store.rollback(tx);
    // Once the budget is spent, whatever the script did with the error, the run has timed out.
    throw failureOf(req, ex.expired ? TIMED_OUT : err);
  } finally {
    current = undefined;
    restoreGlobals(compiled);
  }
}

const TIMED_OUT = Symbol("timed out");

function failureOf(req: SprocRequest, err: unknown): CosmosError {
  if (err === TIMED_OUT)
    return new CosmosError(
      408,
      "RequestTimeout",
      `Execution of the stored procedure '${String(req.sproc.id)}' exceeded its time budget of ${req.timeoutMs} ms; all its writes were rolled back.`,
    );
  // As Cosmos: a 400 whatever was thrown, with the error's `number` (e.g. 409 from a failed create) as the sub-status.
  const e = err as { stack?: unknown; number?: unknown } | null;
  const text = typeof e?.stack === "string" ? e.stack : String(err);
  const summary = JSON.stringify({ Errors: [`Encountered exception while executing function. Exception = ${text}`] });
  const message = `Message: ${summary}\r\nActivityId: ${randomUUID()}, Request URI: /${req.c.self}sprocs/${String(req.sproc._rid)}/, SDK: cosmos-emulator`;
  return new CosmosError(400, "BadRequest", message, typeof e?.number === "number" ? e.number : undefined);
}

// ---- user-defined functions, for queries: compiled once per body in one shared context (no time budget)

const udfContext = vm.createContext({});
const udfByBody = new Map<string, unknown>();
const udfsByContainer = new WeakMap<Container, { etags: string; udf: Record<string, unknown> }>();

export function compileUdf(body: string): unknown {
  let fn = udfByBody.get(body);
  if (fn) return fn;
  try {
    fn = new vm.Script(`(\n${body}\n)`, { filename: "udf.js" }).runInContext(udfContext);
  } catch (err) {
    throw badRequest(`Encountered exception while compiling Javascript. Exception = ${String(err)}`);
  }
  if (typeof fn !== "function") throw badRequest("A user-defined function body must be a function.");
  udfByBody.set(body, fn);
  return fn;
}

export function udfsOf(c: Container): Record<string, unknown> | undefined {
  const defs = c.scripts.udfs;
  if (defs.size === 0) return undefined;
  const etags = [...defs.values()].map((d) => d._etag).join();
  const cached = udfsByContainer.get(c);
  if (cached?.etags === etags) return cached.udf;
  const udf: Record<string, unknown> = {};
  for (const d of defs.values()) udf[d.id as string] = compileUdf(d.body as string);
  udfsByContainer.set(c, { etags, udf });
  return udf;
}
