// Starts the whole local stack (Cosmos emulator, provisioning, provider simulator, `wrangler dev`) and stops it again.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { dirname, resolve } from "node:path";
import type { Writable } from "node:stream";
import { CosmosClient } from "@azure/cosmos";
import { provision } from "../src/cosmos/provision.ts";
import { EMULATOR_KEY, startCosmosEmulator, type CosmosEmulator } from "./cosmos/server.ts";
import { startProviderSimulator, type ProviderSimulator } from "./provider/server.ts";

/** Keys the Worker is configured with; only digests of the API keys reach it. */
export type StackKeys = { merchantId: string; merchantKey: string; adminKey: string; webhookSecret: string; ticketSecret: string };

export type StackOptions = {
  /** Ports; 0 picks a free one. Defaults 8787, 8081, 8082. */
  apiPort?: number;
  cosmosPort?: number;
  providerPort?: number;
  /** Emulator data folder (persisted); in memory without it. */
  dataDir?: string;
  /** wrangler's local state (Durable Object SQLite, D1), its `--persist-to`. Default `.wrangler/state`. */
  persistTo?: string;
  /** wrangler dev's inspector (DevTools protocol) port; wrangler's default (9229) without it. */
  inspectorPort?: number;
  /** wrangler's local trace recorder (see wranglerDevEnv); off unless X_LOCAL_OBSERVABILITY turns it on. */
  wranglerTraces?: boolean;
  /** A wrangler.toml environment (`--env`), e.g. "load"; the top level without it. */
  wranglerEnv?: string;
  database?: string;
  container?: string;
  /** Extra Worker vars, applied last (e.g. shorter timers, EVENT_STORE=memory). */
  vars?: Record<string, string>;
  /** Default: the development keys in `.local/dev-keys.json`, generated on first use. */
  keys?: StackKeys;
  /** Keep wrangler's output out of the terminal (it always goes to the log file). */
  quiet?: boolean;
  /** Where wrangler's output is kept; default `.local/logs/stack-<apiPort>.log`. */
  logFile?: string;
  /** How long wrangler may take to answer GET /health with 200, how often to ask, and how long stopping may take. */
  startTimeoutMs?: number;
  healthPollMs?: number;
  stopTimeoutMs?: number;
};

export type Stack = {
  apiUrl: string;
  cosmosUrl: string;
  providerUrl: string;
  merchantKey: string;
  adminKey: string;
  merchantId: string;
  /** wrangler dev's process (and process group); a new one after restartWorker. */
  readonly wranglerPid: number;
  /** How wrangler dev ended ("exited (code 1)", ...), or undefined while it runs. */
  workerExited(): string | undefined;
  /** wrangler's output. */
  logFile: string;
  /** wrangler dev's inspector (DevTools protocol) port. */
  inspectorPort: number;
  stop(): Promise<void>;
  /** Restarts wrangler dev on the same state with these vars changed (`undefined` unsets one: its default again). */
  restartWorker(vars?: Record<string, string | undefined>): Promise<void>;
};

export const root = resolve(import.meta.dirname, "..");
export const devKeysFile = resolve(root, ".local/dev-keys.json");
const host = "127.0.0.1";
const local = (...parts: string[]) => resolve(root, ".local", ...parts);

/**
 * How wrangler runs here. Its local trace recorder (on by default, for the local explorer's traces view) is off
 * unless X_LOCAL_OBSERVABILITY says otherwise: it records every invocation into a SQLite database of its own, synced to
 * disk, on the same runtime thread as the Worker, which took 40 % of the runtime's CPU per payment under load.
 */
export const wranglerDevEnv = {
  CI: "true",
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  X_LOCAL_OBSERVABILITY: process.env.X_LOCAL_OBSERVABILITY ?? "false",
};

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * Writes a file only its owner can read, whole or not at all: a temporary file renamed over it, or linked in where an
 * existing one must not be replaced (two first starts at once: one wins, the other fails and is run again).
 */
function writePrivate(file: string, text: string, { replace }: { replace: boolean }) {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode: 0o600 });
  try {
    if (replace) renameSync(temporary, file);
    else linkSync(temporary, file);
  } finally {
    rmSync(temporary, { force: true });
  }
}

export function readDevKeys(): Partial<StackKeys> | null {
  if (!existsSync(devKeysFile)) return null;
  try {
    return JSON.parse(readFileSync(devKeysFile, "utf8")) as Partial<StackKeys>;
  } catch {
    throw new Error(`${devKeysFile} is not valid JSON: delete it to generate new development keys`);
  }
}

/** The development keys, generated once (git-ignored, readable by the owner only) and reused. */
export function devKeys(): StackKeys {
  const kept = readDevKeys();
  if (kept?.ticketSecret) return kept as StackKeys;
  // A file of an earlier release has every key but the live tickets' secret: it gains one, the rest is kept.
  const keys: StackKeys = {
    merchantId: "dev",
    merchantKey: `sk_dev_${randomBytes(24).toString("base64url")}`,
    adminKey: `sk_admin_${randomBytes(24).toString("base64url")}`,
    webhookSecret: randomBytes(32).toString("hex"),
    ...kept,
    ticketSecret: randomBytes(32).toString("hex"),
  };
  mkdirSync(local(), { recursive: true });
  writePrivate(devKeysFile, `${JSON.stringify(keys, null, 2)}\n`, { replace: kept !== null });
  return keys;
}

const inUse = (port: number, what: string) => new Error(`port ${port} (${what}) is already in use`);

/** Binds the port and lets it go: 0 answers a free port, a taken one rejects naming it. */
export function claim(port: number, what: string): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", (e: NodeJS.ErrnoException) => fail(e.code === "EADDRINUSE" ? inUse(port, what) : e));
    server.listen(port, host, () => {
      const { port: bound } = server.address() as { port: number };
      server.close(() => done(bound));
    });
  });
}

/**
 * A free port for a process that binds it later (wrangler): below the kernel's ephemeral range, from which `claim(0)`
 * would pick one that any outgoing connection made meanwhile may take (the benchmark met it: EADDRINUSE).
 */
export async function freePort(what: string): Promise<number> {
  const range = existsSync(ephemeralRange) ? readFileSync(ephemeralRange, "utf8").trim().split(/\s+/).map(Number) : [];
  const below = range[0] ?? 0;
  for (let attempt = 0; below > lowestFree && attempt < 50; attempt++) {
    const port = lowestFree + Math.floor(Math.random() * (below - lowestFree));
    // Not one handed out already: it may not be bound yet (two stacks, or a stack's API and inspector).
    if (handedOut.has(port)) continue;
    const bound = await claim(port, what).catch(() => null);
    if (bound !== null) return handedOut.add(bound), bound;
  }
  return claim(0, what);
}
const ephemeralRange = "/proc/sys/net/ipv4/ip_local_port_range";
const lowestFree = 10_000;
const handedOut = new Set<number>();

async function startService<T>(start: () => Promise<T>, port: number, what: string): Promise<T> {
  try {
    return await start();
  } catch (e) {
    throw (e as NodeJS.ErrnoException).code === "EADDRINUSE" ? inUse(port, what) : e;
  }
}

const groupAlive = (pid: number) => {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
};

export async function until(condition: () => boolean | Promise<boolean>, deadlineMs: number, intervalMs: number) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return condition();
}

const signalGroup = (pid: number, signal: NodeJS.Signals) => groupAlive(pid) && process.kill(-pid, signal);

/** SIGTERM to the whole process group, then waits until every member is gone; SIGKILL after the deadline. */
export async function stopGroup(pid: number, timeoutMs: number) {
  signalGroup(pid, "SIGTERM");
  if (await until(() => !groupAlive(pid), timeoutMs, 50)) return;
  signalGroup(pid, "SIGKILL");
  await until(() => !groupAlive(pid), timeoutMs, 50);
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const { startTimeoutMs = 60_000, healthPollMs = 100, stopTimeoutMs = 10_000 } = opts;
  const database = opts.database ?? "regis-pay";
  const container = opts.container ?? "events";

  // Every fixed port is checked before anything starts; wrangler needs a number, so its free port is picked here.
  const requested = { api: opts.apiPort ?? 8787, cosmos: opts.cosmosPort ?? 8081, provider: opts.providerPort ?? 8082 };
  for (const [port, what] of [
    [requested.api, "API"],
    [requested.cosmos, "Cosmos emulator"],
    [requested.provider, "provider simulator"],
  ] as const)
    if (port !== 0) await claim(port, what);
  const apiPort = requested.api === 0 ? await freePort("API") : requested.api;
  const keys = opts.keys ?? devKeys();

  let cosmos: CosmosEmulator | undefined;
  let simulator: ProviderSimulator | undefined;
  let log: WriteStream | undefined;
  // Process groups of the wrangler commands still running (each is started detached, as its own group).
  const groups = new Set<number>();
  const envFile = local("stacks", `${apiPort}.env`);
  const logFile = resolve(root, opts.logFile ?? local("logs", `stack-${apiPort}.log`));
  let recent = "";

  // A parent that exits without stop() (a crash, process.exit) must not leave wrangler, workerd or secrets behind.
  const killOnExit = () => {
    for (const pid of groups) signalGroup(pid, "SIGKILL");
    rmSync(envFile, { force: true });
    watchdog.kill("SIGKILL");
  };
  // Nor one killed outright (SIGKILL, a cancelled CI job), which runs no exit handler: a watchdog outside wrangler's
  // groups is told the groups still running (a line each time they change) through a pipe only this process holds;
  // however this process ends, the pipe closes, and the watchdog ends those groups and removes the secrets' file.
  // stop() ends the watchdog.
  const watchdog = spawn("/bin/sh", ["-c", 'while read -r line; do gs=$line; done <&3; rm -f "$1"; for g in $gs; do kill -KILL -"$g" 2>/dev/null; done', "sh", envFile], {
    detached: true,
    stdio: ["ignore", "ignore", "ignore", "pipe"],
  });
  const watched = watchdog.stdio[3] as Writable & { unref(): void };
  watchdog.unref();
  watched.unref();
  watched.on("error", () => undefined); // a watchdog gone (killed by hand) only loses this guard
  const watch = () => watched.write(`${[...groups].join(" ")}\n`);
  process.on("exit", killOnExit);

  async function stopAll() {
    // wrangler's workerd children share its process group: the group is signalled, and waited for, as a whole.
    for (const pid of groups) await stopGroup(pid, stopTimeoutMs);
    groups.clear();
    process.off("exit", killOnExit);
    watchdog.kill("SIGKILL");
    rmSync(envFile, { force: true });
    log?.end();
    await simulator?.close();
    await cosmos?.close();
  }

  try {
    cosmos = await startService(() => startCosmosEmulator({ port: requested.cosmos, host, ...(opts.dataDir ? { dataDir: resolve(root, opts.dataDir) } : {}) }), requested.cosmos, "Cosmos emulator");
    const client = new CosmosClient({ endpoint: cosmos.url, key: EMULATOR_KEY, connectionPolicy: { enableEndpointDiscovery: false } });
    try {
      await provision(client, database, container);
    } finally {
      client.dispose();
    }
    simulator = await startService(() => startProviderSimulator({ port: requested.provider, host, webhookSecret: keys.webhookSecret }), requested.provider, "provider simulator");

    // Secrets and the ports actually used reach the Worker through a per-stack env file, never the command line.
    const workerVars: Record<string, string> = {
      COSMOS_ENDPOINT: cosmos.url,
      COSMOS_KEY: EMULATOR_KEY,
      COSMOS_DATABASE: database,
      COSMOS_CONTAINER: container,
      PROVIDER_URL: simulator.url,
      WEBHOOK_SECRET: keys.webhookSecret,
      LIVE_TICKET_SECRET: keys.ticketSecret,
      MERCHANT_KEYS: JSON.stringify({ [keys.merchantId]: [sha256(keys.merchantKey)] }),
      ADMIN_KEYS: sha256(keys.adminKey),
      ...opts.vars,
    };
    mkdirSync(local("stacks"), { recursive: true });
    mkdirSync(dirname(logFile), { recursive: true });
    const writeEnv = (vars: Record<string, string>) => {
      const lines = Object.entries(vars).map(([name, value]) => {
        // Single quotes keep a dotenv value literal (JSON included); they cannot hold a quote or a line break.
        if (/['\r\n]/.test(value)) throw new Error(`Worker var ${name} cannot contain a single quote or a line break`);
        return `${name}='${value}'\n`;
      });
      writePrivate(envFile, lines.join(""), { replace: true });
    };
    writeEnv(workerVars);

    const output = (log = createWriteStream(logFile));
    const tail = () => recent.split("\n").slice(-20).join("\n");
    // Detached: each wrangler command and its children (workerd) form their own process group, stopped as a whole.
    const wrangler = (args: string[]) => {
      const common = ["--persist-to", resolve(root, opts.persistTo ?? ".wrangler/state"), ...(opts.wranglerEnv ? ["--env", opts.wranglerEnv] : [])];
      const started = spawn(process.execPath, [resolve(root, "node_modules/wrangler/bin/wrangler.js"), ...args, ...common], {
        cwd: root,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          ...wranglerDevEnv,
          ...(opts.wranglerTraces === undefined ? {} : { X_LOCAL_OBSERVABILITY: String(opts.wranglerTraces) }),
          WRANGLER_LOG_PATH: local("logs", "wrangler"),
        },
      });
      for (const [stream, terminal] of [
        [started.stdout, process.stdout],
        [started.stderr, process.stderr],
      ] as const)
        stream.on("data", (chunk: Buffer) => {
          output.write(chunk);
          recent = (recent + chunk.toString()).slice(-8000);
          if (!opts.quiet) terminal.write(chunk);
        });
      if (started.pid) groups.add(started.pid), watch();
      let exited: string | undefined;
      started.on("exit", (code, signal) => (exited = `exited (${signal ?? `code ${code}`})`));
      started.on("error", (e) => (exited = `failed to start: ${e.message}`));
      return { pid: started.pid ?? 0, exited: () => exited };
    };

    // The D1 read model's tables: wrangler dev does not apply migrations itself (CI=true skips the confirmation).
    const migrations = wrangler(["d1", "migrations", "apply", "READ_MODEL", "--local"]);
    await until(() => migrations.exited() !== undefined, startTimeoutMs, 50);
    const migrated = migrations.exited() ?? `did not finish within ${startTimeoutMs} ms`;
    if (migrated !== "exited (code 0)") throw new Error(`wrangler d1 migrations apply ${migrated}; last lines of ${logFile}:\n${tail()}`);
    await stopGroup(migrations.pid, stopTimeoutMs);
    groups.delete(migrations.pid), watch();

    const apiUrl = `http://${host}:${apiPort}`;
    /** Starts `wrangler dev` and waits until it answers GET /health with 200. */
    const startDev = async () => {
      const inspector = opts.inspectorPort === undefined ? [] : ["--inspector-port", String(opts.inspectorPort)];
      const dev = wrangler(["dev", "--ip", host, "--port", String(apiPort), "--env-file", envFile, "--show-interactive-dev-session=false", ...inspector]);
      const deadline = Date.now() + startTimeoutMs;
      let last = "no answer";
      const healthy = await until(
        async () => {
          if (dev.exited()) return true;
          try {
            const res = await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) });
            last = `GET /health answered ${res.status}`;
            await res.body?.cancel();
            return res.status === 200;
          } catch (e) {
            // A request cut by the deadline says less than the answer before it.
            if ((e as Error).name !== "TimeoutError") last = `GET /health: ${(e as Error).message}`;
            return false;
          }
        },
        startTimeoutMs,
        healthPollMs,
      );
      const exited = dev.exited();
      if (exited || !healthy) {
        const reason = exited ? `wrangler dev ${exited}` : `wrangler dev not healthy after ${startTimeoutMs} ms (${last})`;
        throw new Error(`${reason}; last lines of ${logFile}:\n${tail()}`);
      }
      return dev;
    };
    let dev = await startDev();

    let stopping: Promise<void> | undefined;
    return {
      apiUrl,
      cosmosUrl: cosmos.url,
      providerUrl: simulator.url,
      merchantKey: keys.merchantKey,
      adminKey: keys.adminKey,
      merchantId: keys.merchantId,
      get wranglerPid() {
        return dev.pid;
      },
      workerExited: () => dev.exited(),
      logFile,
      inspectorPort: opts.inspectorPort ?? 9229,
      stop: () => (stopping ??= stopAll()),
      /** Restarts only the Worker runtime, on the same state and ports, with these vars changed. */
      async restartWorker(vars: Record<string, string | undefined> = {}) {
        await stopGroup(dev.pid, stopTimeoutMs);
        groups.delete(dev.pid), watch();
        for (const [name, value] of Object.entries(vars)) {
          if (value === undefined) delete workerVars[name];
          else workerVars[name] = value;
        }
        writeEnv(workerVars);
        dev = await startDev();
      },
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
