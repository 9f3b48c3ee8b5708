// Persistence for a dataDir: an append-only JSON-lines journal (one line per committed transaction), replayed at start and compacted into a snapshot.
import fs from "node:fs";
import path from "node:path";
import type { Doc } from "./query.ts";
import type { Container, Journal, Rec, ScriptKind, Store } from "./store.ts";

type Line =
  | { t: "reset" }
  | { t: "lsn"; lsn: number; time: number }
  | { t: "db"; body: Doc }
  | { t: "-db"; id: string }
  | { t: "coll"; db: string; body: Doc }
  | { t: "-coll"; db: string; id: string }
  | { t: "script"; db: string; coll: string; kind: ScriptKind; body: Doc }
  | { t: "-script"; db: string; coll: string; kind: ScriptKind; id: string }
  | { t: "w"; db: string; coll: string; w: [pk: string, id: string, lsn: number, time: number, doc: Doc | null][] };

const FILE = "cosmos.jsonl";
const LOCK = "cosmos.lock";

/** One process per dataDir: a second one would replay a stale journal and could compact it over the first's writes. */
function lock(dir: string): string {
  const file = path.join(dir, LOCK);
  for (;;) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: "wx" });
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number(fs.readFileSync(file, "utf8"));
      if (alive(pid)) throw new Error(`${dir} is in use by another emulator (pid ${pid})`);
      fs.rmSync(file, { force: true });
    }
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Every commit is written (not fsynced) before it is acknowledged, so a killed process loses nothing;
 * an operating-system crash or power loss can lose what the OS had not flushed yet.
 */
export class FileJournal implements Journal {
  private file: string;
  private lockFile: string;
  private fd: number;
  private lines = 0;
  private store: Store;
  private compactionScheduled = false;

  constructor(dir: string, store: Store) {
    fs.mkdirSync(dir, { recursive: true });
    this.lockFile = lock(dir);
    this.file = path.join(dir, FILE);
    this.store = store;
    try {
      this.lines = replay(this.file, store);
    } catch (err) {
      fs.rmSync(this.lockFile, { force: true });
      throw err;
    }
    this.fd = fs.openSync(this.file, "a");
    if (this.wasteful()) this.compact();
  }

  meta(line: Doc) {
    this.append(JSON.stringify(line));
  }

  writes(c: Container, writes: readonly { id: string; part: { key: string }; next: Rec | undefined }[]) {
    this.append(writesLine(c, writes.map((w) => [w.part.key, w.id, w.next])));
  }

  private append(line: string) {
    fs.writeSync(this.fd, line + "\n");
    this.lines++;
    if (!this.compactionScheduled && this.wasteful()) {
      this.compactionScheduled = true;
      setImmediate(() => {
        this.compactionScheduled = false;
        if (this.fd >= 0) this.compact();
      });
    }
  }

  private wasteful(): boolean {
    return this.lines > 2 * this.store.documents + 10_000;
  }

  /** Rewrites the journal as a snapshot of the current state (written aside, fsynced, then renamed over). */
  compact() {
    const tmp = `${this.file}.tmp`;
    const out = fs.openSync(tmp, "w");
    let lines = 0;
    const put = (s: string) => {
      fs.writeSync(out, s + "\n");
      lines++;
    };
    put(JSON.stringify({ t: "lsn", lsn: this.store.lsn, time: this.store.lastTime }));
    for (const db of this.store.databases.values()) {
      put(JSON.stringify({ t: "db", body: db.body }));
      for (const c of db.containers.values()) {
        put(JSON.stringify({ t: "coll", db: db.id, body: c.body }));
        for (const kind of ["sprocs", "udfs"] as const)
          for (const body of c.scripts[kind].values()) put(JSON.stringify({ t: "script", db: db.id, coll: c.id, kind, body }));
        let chunk: [string, string, Rec][] = [];
        for (const r of c.feed) {
          if (!c.isLive(r)) continue;
          chunk.push([r.pk, r.id, r]);
          if (chunk.length === 500) {
            put(writesLine(c, chunk));
            chunk = [];
          }
        }
        if (chunk.length) put(writesLine(c, chunk));
      }
    }
    fs.fsyncSync(out);
    fs.closeSync(out);
    fs.closeSync(this.fd);
    fs.renameSync(tmp, this.file);
    this.fd = fs.openSync(this.file, "a");
    this.lines = lines;
  }

  /** Compacts, so the next start reads a snapshot rather than a history. */
  close() {
    if (this.fd < 0) return;
    this.compact();
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = -1;
    fs.rmSync(this.lockFile, { force: true });
  }
}

/** Builds a write line around the documents' stored JSON, so nothing is serialised twice. */
function writesLine(c: Container, writes: readonly [pk: string, id: string, next: Rec | undefined][]): string {
  const parts = writes.map(
    ([pk, id, next]) => `[${JSON.stringify(pk)},${JSON.stringify(id)},${next?.lsn ?? 0},${next?.time ?? 0},${next ? next.json : "null"}]`,
  );
  return `{"t":"w","db":${JSON.stringify(c.db.id)},"coll":${JSON.stringify(c.id)},"w":[${parts.join(",")}]}`;
}

/** Applies the journal to the store; a torn last line (a crash mid-write) is cut off. Returns the number of lines. */
function replay(file: string, store: Store): number {
  if (!fs.existsSync(file)) return 0;
  const text = fs.readFileSync(file, "utf8");
  let offset = 0;
  let lines = 0;
  while (offset < text.length) {
    const end = text.indexOf("\n", offset);
    const raw = end < 0 ? text.slice(offset) : text.slice(offset, end);
    let line: Line;
    try {
      line = JSON.parse(raw) as Line;
    } catch (err) {
      if (end >= 0 && text.slice(end + 1).trim() !== "") throw new Error(`${file} is corrupt at byte ${offset}: ${(err as Error).message}`);
      fs.truncateSync(file, Buffer.byteLength(text.slice(0, offset)));
      break;
    }
    apply(store, line);
    lines++;
    if (end < 0) break;
    offset = end + 1;
  }
  return lines;
}

function apply(store: Store, line: Line) {
  switch (line.t) {
    case "reset":
      store.reset();
      return;
    case "lsn":
      store.lsn = Math.max(store.lsn, line.lsn);
      store.lastTime = Math.max(store.lastTime, line.time);
      return;
    case "db":
      store.loadDatabase(line.body);
      return;
    case "-db":
      store.deleteDatabase(line.id);
      return;
    case "coll": {
      const db = store.database(line.db);
      const existing = db.containers.get(line.body.id as string);
      if (existing) existing.body = line.body;
      else store.loadContainer(db, line.body);
      return;
    }
    case "-coll":
      store.deleteContainer(line.db, line.id);
      return;
    case "script":
      store.container(line.db, line.coll).scripts[line.kind].set(line.body.id as string, line.body);
      return;
    case "-script":
      store.container(line.db, line.coll).scripts[line.kind].delete(line.id);
      return;
    case "w": {
      const c = store.container(line.db, line.coll);
      for (const [pk, id, lsn, time, doc] of line.w) store.load(c, pk, id, lsn, time, doc);
      return;
    }
  }
}
