// Starts the whole local stack (Cosmos emulator, provisioning, provider simulator, `wrangler dev`) and stops it again.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, resolve } from "node:path";
import { CosmosClient } from "@azure/cosmos";
import { provision } from "../src/cosmos/provision.ts";
import { EMULATOR_KEY, startCosmosEmulator, type CosmosEmulator } from "./cosmos/server.ts";
import { startProviderSimulator, type ProviderSimulator } from "./provider/server.ts";

/** Keys the Worker is configured with; only digests of the API keys reach it. */
export type StackKeys = { merchantId: string; merchantKey: string; adminKey: string; webhookSecret: string };

export type StackOptions = {
  /** Ports; 0 picks a free one. Defaults 8787, 8081, 8082. */
  apiPort?: number;
  cosmosPort?: number;
  providerPort?: number;
  /** Emulator data folder (persisted); in memory without it. */
  dataDir?: string;
  /** wrangler's local state (Durable Object SQLite, D1), its `--persist-to`. Default `.wrangler/state`. */
  persistTo?: string;
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
  wranglerPid: number;
  /** wrangler's output. */
  logFile: string;
  stop(): Promise<void>;
};

export const root = resolve(import.meta.dirname, "..");
export const devKeysFile = resolve(root, ".local/dev-keys.json");
const host = "127.0.0.1";
const local = (...parts: string[]) => resolve(root, ".local", ...parts);

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** The development keys, generated once (git-ignored, readable by the owner only) and reused. */
export function devKeys(): StackKeys {
  if (existsSync(devKeysFile)) return JSON.parse(readFileSync(devKeysFile, "utf8")) as StackKeys;
  const keys: StackKeys = {
    merchantId: "dev",
    merchantKey: `sk_dev_${randomBytes(24).toString("base64url")}`,
    adminKey: `sk_admin_${randomBytes(24).toString("base64url")}`,
    webhookSecret: randomBytes(32).toString("hex"),
  };
  mkdirSync(local(), { recursive: true });
  writeFileSync(devKeysFile, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  return keys;
}

const inUse = (port: number, what: string) => new Error(`port ${port} (${what}) is already in use`);

/** Binds the port and lets it go: 0 answers a free port, a taken one rejects naming it. */
function claim(port: number, what: string): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", (e: NodeJS.ErrnoException) => fail(e.code === "EADDRINUSE" ? inUse(port, what) : e));
    server.listen(port, host, () => {
      const { port: bound } = server.address() as { port: number };
      server.close(() => done(bound));
    });
  });
}

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

async function until(condition: () => boolean | Promise<boolean>, deadlineMs: number, intervalMs: number) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return condition();
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
  const apiPort = requested.api === 0 ? await claim(0, "API") : requested.api;
  const keys = opts.keys ?? devKeys();

  let cosmos: CosmosEmulator | undefined;
  let simulator: ProviderSimulator | undefined;
  let child: ChildProcess | undefined;
  let exited: string | undefined;
  const envFile = local("stacks", `${apiPort}.env`);
  const logFile = resolve(root, opts.logFile ?? local("logs", `stack-${apiPort}.log`));
  let recent = "";

  const killGroup = (signal: NodeJS.Signals) => {
    if (child?.pid && groupAlive(child.pid)) process.kill(-child.pid, signal);
  };
  // A parent that exits without stop() (a crash, process.exit) must not leave wrangler, workerd or secrets behind.
  const killOnExit = () => {
    killGroup("SIGKILL");
    rmSync(envFile, { force: true });
  };

  async function stopAll() {
    if (child?.pid) {
      const pid = child.pid;
      killGroup("SIGTERM");
      // wrangler's workerd children share its process group: wait until the whole group is gone.
      if (!(await until(() => !groupAlive(pid), stopTimeoutMs, 50))) {
        killGroup("SIGKILL");
        await until(() => !groupAlive(pid), stopTimeoutMs, 50);
      }
      process.off("exit", killOnExit);
    }
    rmSync(envFile, { force: true });
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
      MERCHANT_KEYS: JSON.stringify({ [keys.merchantId]: [sha256(keys.merchantKey)] }),
      ADMIN_KEYS: sha256(keys.adminKey),
      ...opts.vars,
    };
    mkdirSync(local("stacks"), { recursive: true });
    mkdirSync(dirname(logFile), { recursive: true });
    const lines = Object.entries(workerVars).map(([name, value]) => {
      // Single quotes keep a dotenv value literal (JSON included); they cannot hold a quote or a line break.
      if (/['\r\n]/.test(value)) throw new Error(`Worker var ${name} cannot contain a single quote or a line break`);
      return `${name}='${value}'\n`;
    });
    writeFileSync(envFile, lines.join(""), { mode: 0o600 });

    const log = createWriteStream(logFile);
    const tail = () => recent.split("\n").slice(-20).join("\n");
    const wrangler = (args: string[], detached: boolean) => {
      const common = ["--persist-to", resolve(root, opts.persistTo ?? ".wrangler/state"), ...(opts.wranglerEnv ? ["--env", opts.wranglerEnv] : [])];
      const started = spawn(process.execPath, [resolve(root, "node_modules/wrangler/bin/wrangler.js"), ...args, ...common], {
        cwd: root,
        detached,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_LOG_PATH: local("logs", "wrangler") },
      });
      for (const [stream, terminal] of [
        [started.stdout, process.stdout],
        [started.stderr, process.stderr],
      ] as const)
        stream.on("data", (chunk: Buffer) => {
          log.write(chunk);
          recent = (recent + chunk.toString()).slice(-8000);
          if (!opts.quiet) terminal.write(chunk);
        });
      return started;
    };

    // The D1 read model's tables: wrangler dev does not apply migrations itself (CI=true skips the confirmation).
    const migrations = wrangler(["d1", "migrations", "apply", "READ_MODEL", "--local"], false);
    const migrated = await new Promise<string>((done) => {
      migrations.on("exit", (code, signal) => done(code === 0 ? "" : `exited (${signal ?? `code ${code}`})`));
      migrations.on("error", (e) => done(`failed to start: ${e.message}`));
    });
    if (migrated) throw new Error(`wrangler d1 migrations apply ${migrated}; last lines of ${logFile}:\n${tail()}`);

    // Detached: wrangler and its workerd children get their own process group, which stop() signals as a whole.
    child = wrangler(["dev", "--ip", host, "--port", String(apiPort), "--env-file", envFile, "--show-interactive-dev-session=false"], true);
    process.on("exit", killOnExit);
    child.on("exit", (code, signal) => {
      exited = `exited (${signal ?? `code ${code}`})`;
      log.end();
    });
    child.on("error", (e) => (exited = `failed to start: ${e.message}`));

    const apiUrl = `http://${host}:${apiPort}`;
    const deadline = Date.now() + startTimeoutMs;
    let last = "no answer";
    const healthy = await until(
      async () => {
        if (exited) return true;
        try {
          const res = await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) });
          last = `GET /health answered ${res.status}`;
          await res.body?.cancel();
          return res.status === 200;
        } catch (e) {
          last = `GET /health: ${(e as Error).message}`;
          return false;
        }
      },
      startTimeoutMs,
      healthPollMs,
    );
    if (exited || !healthy) {
      const reason = exited ? `wrangler dev ${exited}` : `wrangler dev not healthy after ${startTimeoutMs} ms (${last})`;
      throw new Error(`${reason}; last lines of ${logFile}:\n${tail()}`);
    }

    let stopping: Promise<void> | undefined;
    return {
      apiUrl,
      cosmosUrl: cosmos.url,
      providerUrl: simulator.url,
      merchantKey: keys.merchantKey,
      adminKey: keys.adminKey,
      merchantId: keys.merchantId,
      wranglerPid: child.pid!,
      logFile,
      stop: () => (stopping ??= stopAll()),
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
