// Cosmos SQL on @zeit/cosmosdb-query: each query text is parsed and compiled once, then run against an array of documents.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const engineMain = require.resolve("@zeit/cosmosdb-query");
const fromEngine = createRequire(engineMain);
const parse = (fromEngine("./parser") as { parse(s: string): unknown }).parse;
const EngineSyntaxError = (fromEngine("./parser") as { SyntaxError: new (...a: unknown[]) => Error }).SyntaxError;
const transform = (fromEngine("./transformer") as { default(ast: unknown): JsNode }).default;
const aggregates = fromEngine("./aggregate-functions") as object;
const builtins = fromEngine("./builtin-functions") as object;
const helpers = fromEngine("./helpers") as Record<string, unknown>;
const generate = (fromEngine("@babel/generator") as { default(ast: unknown): { code: string } }).default;

export type Doc = Record<string, unknown>;
export type QueryParameter = { name: string; value: unknown };
export type QueryResult = { result: unknown[]; continuation: { token: string; range: unknown } | null };
export type QueryOptions = {
  parameters?: QueryParameter[] | undefined;
  maxItemCount?: number | null | undefined;
  continuation?: { token: string } | null | undefined;
  udf?: Record<string, unknown> | undefined;
  compositeIndexes?: unknown[] | undefined;
};

type JsNode = { type: string; [k: string]: unknown };
type Compiled = (...args: unknown[]) => QueryResult;

export class QueryError extends Error {}

// The engine's helpers build arrays with `[...acc, x]` inside reduce, which is quadratic; 100,000 documents
// would take minutes. Same semantics, linear.
function stripUndefined(v: unknown): unknown {
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    for (const x of v) if (x !== undefined) out.push(stripUndefined(x));
    return out;
  }
  if (v !== null && typeof v === "object") {
    const out: Doc = {};
    for (const k of Object.keys(v)) {
      const x = (v as Doc)[k];
      if (x !== undefined) out[k] = stripUndefined(x);
    }
    return out;
  }
  return v;
}
helpers.stripUndefined = stripUndefined;
const queryHelpers = {
  ...helpers,
  append(acc: unknown[], x: unknown) {
    acc.push(x);
  },
  appendAll(acc: unknown[], xs: unknown[]) {
    for (const x of xs) acc.push(x);
  },
};

const ident = (name: string): JsNode => ({ type: "Identifier", name });
const helperCall = (name: string, args: JsNode[]): JsNode => ({
  type: "CallExpression",
  callee: { type: "MemberExpression", object: ident("$h"), property: ident(name), computed: false },
  arguments: args,
});

// `[...$, a, ...b]` (the accumulator spread) becomes `($h.append($, a), $h.appendAll($, b), $)`.
function rewriteAccumulate(node: unknown): JsNode | null {
  const n = node as JsNode;
  if (n?.type !== "ArrayExpression") return null;
  const elements = n.elements as JsNode[];
  const first = elements[0];
  if (first?.type !== "SpreadElement" || (first.argument as JsNode).type !== "Identifier" || (first.argument as JsNode).name !== "$") return null;
  const steps = elements.slice(1).map((e) =>
    e.type === "SpreadElement" ? helperCall("appendAll", [ident("$"), e.argument as JsNode]) : helperCall("append", [ident("$"), e]),
  );
  return { type: "SequenceExpression", expressions: [...steps, ident("$")] };
}

function linearizeReducers(node: unknown): void {
  if (Array.isArray(node)) {
    for (const x of node) linearizeReducers(x);
    return;
  }
  if (node === null || typeof node !== "object") return;
  const n = node as JsNode;
  if (n.type === "CallExpression") {
    const callee = n.callee as JsNode;
    const [reducer] = n.arguments as JsNode[];
    const params = reducer?.params as JsNode[] | undefined;
    if (
      callee.type === "MemberExpression" &&
      (callee.property as JsNode).name === "reduce" &&
      reducer?.type === "ArrowFunctionExpression" &&
      params?.[0]?.type === "Identifier" &&
      params[0].name === "$"
    ) {
      const body = reducer.body as JsNode;
      const direct = rewriteAccumulate(body);
      if (direct) reducer.body = direct;
      else if (body.type === "ConditionalExpression") {
        const consequent = rewriteAccumulate(body.consequent);
        if (consequent) body.consequent = consequent;
      }
    }
  }
  for (const k of Object.keys(n)) if (k !== "type") linearizeReducers(n[k]);
}

const cache = new Map<string, Compiled>();
const CACHE_LIMIT = 2000;

function compile(text: string): Compiled {
  let fn = cache.get(text);
  if (fn) return fn;
  try {
    const jsAst = transform(parse(text.trim()));
    linearizeReducers(jsAst);
    fn = new Function(`"use strict";return (${generate(jsAst).code})`)() as Compiled;
  } catch (err) {
    throw new QueryError((err as Error).message);
  }
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  cache.set(text, fn);
  return fn;
}

export function runQuery(text: string, docs: Doc[], opts: QueryOptions = {}): QueryResult {
  const fn = compile(text);
  const params: Record<string, unknown> = {};
  for (const { name, value } of opts.parameters ?? []) params[name.slice(1)] = value;
  try {
    return fn(aggregates, builtins, docs, queryHelpers, opts.udf ?? {}, params, opts.maxItemCount ?? null, opts.continuation ?? null, opts.compositeIndexes ?? []);
  } catch (err) {
    if (err instanceof EngineSyntaxError || err instanceof Error) throw new QueryError(err.message);
    throw err;
  }
}
