// Exact money: ISO 4217 minor units (currency-codes) and decimal conversion (big.js), never float arithmetic.
import Big from "big.js";
import { code as currencyRecord } from "currency-codes";

const digitsOf = new Map<string, number | undefined>();

/** Number of minor-unit digits of an ISO 4217 currency (GBP 2, JPY 0, KWD 3), or undefined when unknown. */
export function minorDigits(currency: string): number | undefined {
  if (!digitsOf.has(currency)) digitsOf.set(currency, currencyRecord(currency)?.digits);
  return digitsOf.get(currency);
}

export type MinorResult = { ok: true; minor: number } | { ok: false; reason: "not_finite" | "too_many_decimals" | "unknown_currency" };

/**
 * Converts a major-unit amount (a JSON number such as 86.1) to integer minor units (8610).
 * The number's shortest decimal form is what the client wrote, so 86.10 and 86.1 are the same amount.
 */
export function toMinor(amount: number, currency: string): MinorResult {
  const digits = minorDigits(currency);
  if (digits === undefined) return { ok: false, reason: "unknown_currency" };
  if (!Number.isFinite(amount)) return { ok: false, reason: "not_finite" };
  const scaled = new Big(amount).times(new Big(10).pow(digits));
  if (!scaled.eq(scaled.round(0, Big.roundDown))) return { ok: false, reason: "too_many_decimals" };
  return { ok: true, minor: scaled.toNumber() === 0 ? 0 : scaled.toNumber() };
}

/**
 * Whether a JSON number literal is exactly the number it parsed to, as `toMinor` takes it to be: "86.10" and "86.1"
 * are, but "10.009999999999999999" parses to 10.01 (a double carries about 17 significant digits), so that amount
 * would be rounded instead of refused.
 */
export const parsedExactly = (literal: string, value: number) => Number.isFinite(value) && new Big(literal).eq(value);

/**
 * Minor units of an amount already stored (Regis Pay accepted any number of decimals): rounded down to the
 * currency's precision instead of refused, so that neither the refunds allowed nor a charge made from it exceed it.
 */
export function storedToMinor(amount: number, currency: string): number {
  const digits = minorDigits(currency) ?? 2;
  return new Big(amount).times(new Big(10).pow(digits)).round(0, Big.roundDown).toNumber();
}

/**
 * Integer minor units back to the major-unit JSON number Regis Pay stores (8610 GBP -> 86.1): the decimal point is
 * placed in the integer's digits and the number read from that text, so no float arithmetic is involved.
 */
export function toMajor(minor: number, currency: string): number {
  const digits = minorDigits(currency) ?? 2;
  if (digits === 0) return minor;
  const text = String(Math.abs(minor)).padStart(digits + 1, "0");
  return Number(`${minor < 0 ? "-" : ""}${text.slice(0, -digits)}.${text.slice(-digits)}`);
}
