// Partial document update (PATCH): add, set, replace, remove, incr and move operations on JSON paths, as Cosmos applies them.
import type { Doc } from "./query.ts";
import { badRequest } from "./store.ts";

export type PatchOperation = { op: string; path: string; value?: unknown; from?: string };

function segmentsOf(path: unknown): string[] {
  if (typeof path !== "string" || !path.startsWith("/")) throw badRequest(`Invalid patch path '${String(path)}'.`);
  return path
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

/** The container of the last segment, and that segment. */
function locate(doc: Doc, path: unknown): [Doc | unknown[], string] {
  const segs = segmentsOf(path);
  let node: unknown = doc;
  for (const s of segs.slice(0, -1)) {
    node = Array.isArray(node) ? node[Number(s)] : (node as Doc | null)?.[s];
    if (node === null || typeof node !== "object") throw badRequest(`Patch path '${String(path)}' does not exist.`);
  }
  return [node as Doc | unknown[], segs[segs.length - 1]!];
}

function index(arr: unknown[], key: string, allowEnd: boolean): number {
  if (key === "-" && allowEnd) return arr.length;
  const i = Number(key);
  if (!Number.isInteger(i) || i < 0 || i > arr.length || (i === arr.length && !allowEnd))
    throw badRequest(`Index '${key}' to operate on is out of array bounds.`);
  return i;
}

function has(parent: Doc | unknown[], key: string): boolean {
  return Array.isArray(parent) ? Number.isInteger(Number(key)) && Number(key) >= 0 && Number(key) < parent.length : Object.hasOwn(parent, key);
}

function take(doc: Doc, path: unknown): unknown {
  const [parent, key] = locate(doc, path);
  if (!has(parent, key)) throw badRequest(`Patch path '${String(path)}' does not exist.`);
  if (Array.isArray(parent)) return parent.splice(index(parent, key, false), 1)[0];
  const v = parent[key];
  delete parent[key];
  return v;
}

function put(doc: Doc, path: unknown, value: unknown, insert: boolean) {
  const [parent, key] = locate(doc, path);
  if (Array.isArray(parent)) {
    const i = index(parent, key, true);
    if (insert) parent.splice(i, 0, value);
    else parent[i] = value;
  } else parent[key] = value;
}

/** Applies the operations to `doc` in place (the caller passes a copy). */
export function applyPatch(doc: Doc, operations: unknown): void {
  if (!Array.isArray(operations) || operations.length === 0 || operations.length > 10)
    throw badRequest("A patch request must carry between 1 and 10 operations.");
  for (const o of operations as PatchOperation[]) {
    if (o.path === "/id" || o.path === "/_rid") throw badRequest(`Patch cannot change '${o.path}'.`);
    switch (o.op) {
      case "add":
        put(doc, o.path, o.value, true);
        break;
      case "set":
        put(doc, o.path, o.value, false);
        break;
      case "replace": {
        const [parent, key] = locate(doc, o.path);
        if (!has(parent, key)) throw badRequest(`Patch path '${o.path}' does not exist.`);
        put(doc, o.path, o.value, false);
        break;
      }
      case "remove":
        take(doc, o.path);
        break;
      case "incr": {
        if (typeof o.value !== "number") throw badRequest("The value of an incr operation must be a number.");
        const [parent, key] = locate(doc, o.path);
        const current = has(parent, key) ? (parent as Doc)[key] : 0;
        if (typeof current !== "number") throw badRequest(`Patch path '${o.path}' is not a number.`);
        put(doc, o.path, current + o.value, false);
        break;
      }
      case "move":
        put(doc, o.path, take(doc, o.from), false);
        break;
      default:
        throw badRequest(`Unknown patch operation '${String(o.op)}'.`);
    }
  }
}
