import Big from "big.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { minorDigits, storedToMinor, toMajor, toMinor } from "../../src/payment/money.ts";

describe("money in ISO 4217 minor units", () => {
  it("knows each currency's minor digits", () => {
    expect([minorDigits("GBP"), minorDigits("JPY"), minorDigits("KWD"), minorDigits("YEN")]).toEqual([2, 0, 3, undefined]);
  });
  it("converts without floating-point drift", () => {
    expect(toMinor(86.1, "GBP")).toEqual({ ok: true, minor: 8610 });
    expect(toMinor(1.15, "GBP")).toEqual({ ok: true, minor: 115 }); // 1.15 * 100 is 114.99999999999999 in floats
    expect(toMinor(100, "JPY")).toEqual({ ok: true, minor: 100 });
    expect(toMinor(1.234, "KWD")).toEqual({ ok: true, minor: 1234 });
    expect(toMinor(19.99, "USD")).toEqual({ ok: true, minor: 1999 });
  });
  it("refuses more decimals than the currency has, non-finite numbers and unknown currencies", () => {
    expect(toMinor(86.123, "GBP")).toEqual({ ok: false, reason: "too_many_decimals" });
    expect(toMinor(1.5, "JPY")).toEqual({ ok: false, reason: "too_many_decimals" });
    expect(toMinor(Number.NaN, "GBP")).toEqual({ ok: false, reason: "not_finite" });
    expect(toMinor(Number.POSITIVE_INFINITY, "GBP")).toEqual({ ok: false, reason: "not_finite" });
    expect(toMinor(1, "XYZ")).toEqual({ ok: false, reason: "unknown_currency" });
  });
  it("gives back the JSON number Regis Pay stores", () => {
    expect(toMajor(8610, "GBP")).toBe(86.1);
    expect(JSON.stringify(toMajor(8610, "GBP"))).toBe("86.1");
    expect(toMajor(1234, "KWD")).toBe(1.234);
    expect(toMajor(100, "JPY")).toBe(100);
    expect(toMajor(1, "GBP")).toBe(0.01);
    expect(toMajor(-5, "KWD")).toBe(-0.005);
  });
  it("gives back the exact decimal of any whole number of minor units, and reads it back to the same units", () => {
    fc.assert(
      fc.property(fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom("GBP", "JPY", "KWD"), (minor, currency) => {
        const major = toMajor(minor, currency);
        expect(major).toBe(new Big(minor).div(new Big(10).pow(minorDigits(currency)!)).toNumber());
        if (Math.abs(minor) <= 2 ** 50) expect(toMinor(major, currency)).toEqual({ ok: true, minor });
      }),
      { numRuns: 2000 },
    );
  });
  it("rounds legacy stored amounts with extra decimals down (refunds and a charge never exceed what was stored)", () => {
    expect(storedToMinor(86.125, "GBP")).toBe(8612);
    expect(storedToMinor(86.139, "GBP")).toBe(8613);
    expect(storedToMinor(10.015, "GBP")).toBe(1001);
    expect(storedToMinor(86.1, "GBP")).toBe(8610);
  });
});
