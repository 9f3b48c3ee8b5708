// Structured JSON logs: one line per fact, machine-readable, never carrying secrets.
export type LogFields = Record<string, string | number | boolean | null | undefined>;
export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let threshold = rank.info;

export function setLogLevel(level: LogLevel) {
  threshold = rank[level];
}

export function log(level: LogLevel, msg: string, fields: LogFields = {}) {
  if (rank[level] < threshold) return;
  const line = JSON.stringify({ level, msg, ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
