// Finds the Chromium the browser test drives: CHROMIUM_PATH, else Debian's /usr/bin/chromium, installed with apt when missing (root on Debian only).
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, statSync } from "node:fs";

export const debianChromium = "/usr/bin/chromium";

/** Without the background-networking switches Chromium keeps calling home, which floods a closed network with retries. */
export const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function executable(path: string) {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Why apt cannot be used here, or null when it can. */
function whyNotInstallable(): string | null {
  if (!existsSync("/etc/debian_version")) return "this is not Debian";
  if (process.getuid?.() !== 0) return "not running as root, so apt-get cannot install it";
  if (!executable("/usr/bin/apt-get")) return "apt-get is missing";
  return null;
}

function aptGet(args: string[], timeoutMs: number) {
  const run = spawnSync("apt-get", args, {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    encoding: "utf8",
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${run.stdout ?? ""}${run.stderr ?? ""}${run.error ? `\n${run.error.message}` : ""}`;
  return { ok: run.status === 0, tail: output.trim().split("\n").slice(-8).join("\n") };
}

/** Installs Debian's chromium package; refreshes the package lists only when the first attempt fails (e.g. none downloaded yet). */
function installDebianChromium(timeoutMs: number) {
  const install = ["install", "-y", "chromium"];
  let attempt = aptGet(install, timeoutMs);
  if (!attempt.ok) {
    const update = aptGet(["update"], timeoutMs);
    if (!update.ok) throw new Error(`apt-get install chromium failed:\n${attempt.tail}\nand apt-get update failed too:\n${update.tail}`);
    attempt = aptGet(install, timeoutMs);
  }
  if (!attempt.ok) throw new Error(`apt-get install chromium failed:\n${attempt.tail}`);
}

/** The path of a Chromium to launch; throws saying what to do when there is none and none can be installed. */
export function findChromium({ installTimeoutMs = 600_000 } = {}): string {
  const given = process.env.CHROMIUM_PATH;
  if (given) {
    if (!executable(given)) throw new Error(`CHROMIUM_PATH is ${given}, which is not an executable file`);
    return given;
  }
  if (executable(debianChromium)) return debianChromium;
  const why = whyNotInstallable();
  if (why) throw new Error(`the browser test needs Chromium: set CHROMIUM_PATH to a Chromium or Chrome binary, or install Debian's chromium package at ${debianChromium} (cannot install it here: ${why})`);
  installDebianChromium(installTimeoutMs);
  if (!executable(debianChromium)) throw new Error(`apt-get installed chromium, yet ${debianChromium} is not there`);
  return debianChromium;
}
