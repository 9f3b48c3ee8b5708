// Exact money for the simulator: decimal major-unit amounts <-> integer minor units, per ISO 4217 currency.
const currencies = new Set(Intl.supportedValuesOf("currency"));

export function isCurrency(code: unknown): code is string {
  return typeof code === "string" && currencies.has(code);
}

// Minor-unit digits as the platform's ICU data reports them (GBP 2, JPY 0, KWD 3).
export function minorDigits(currency: string): number {
  return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
}

// The amount in minor units, or null when it is negative, not a number, or finer than the currency allows.
// String(n) is the shortest decimal that round-trips (0.1 -> "0.1"), so parsing it avoids binary drift.
export function toMinor(amount: unknown, currency: string): number | null {
  if (typeof amount !== "number" || !Number.isFinite(amount) || amount < 0) return null;
  const match = /^(\d+)(?:\.(\d+))?$/.exec(String(amount));
  if (!match) return null; // exponent notation: far too large or too small to be money
  const digits = minorDigits(currency);
  const fraction = match[2] ?? "";
  if (fraction.length > digits) return null;
  const minor = Number(match[1] + fraction.padEnd(digits, "0"));
  return Number.isSafeInteger(minor) ? minor : null;
}

// Division by a power of ten is correctly rounded, so 30 GBP minor -> 0.3 exactly as JSON prints it.
export function fromMinor(minor: number, currency: string): number {
  return minor / 10 ** minorDigits(currency);
}
