// Exact money conversion used by the provider simulator: major-unit numbers to integer minor units and back.
import { describe, expect, it } from "vitest";
import { fromMinor, isCurrency, minorDigits, toMinor } from "../../scripts/provider/money.ts";

describe("converting to minor units", () => {
  it.each([
    [86.1, "GBP", 8610],
    [0.1, "GBP", 10],
    [0.3, "EUR", 30],
    [1234, "JPY", 1234],
    [1.234, "KWD", 1234],
    [0, "GBP", 0],
  ])("turns %d %s into %d", (amount, currency, minor) => {
    expect(toMinor(amount, currency)).toBe(minor);
  });

  it.each([
    ["finer than the currency", 0.001, "GBP"],
    ["a fraction of a yen", 1.5, "JPY"],
    ["negative", -1, "GBP"],
    ["tiny (exponent notation)", 1e-7, "GBP"],
    ["huge (exponent notation)", 1e21, "GBP"],
    ["beyond safe integers in minor units", 2 ** 53, "GBP"],
    ["not a number", Number.NaN, "GBP"],
    ["text", "1", "GBP"],
  ])("refuses an amount %s", (_case, amount, currency) => {
    expect(toMinor(amount, currency)).toBeNull();
  });

  it("round-trips minor units to the decimal JSON prints", () => {
    expect(JSON.stringify(fromMinor(toMinor(0.1, "GBP")! * 3, "GBP"))).toBe("0.3");
    expect(fromMinor(8610, "GBP")).toBe(86.1);
  });
});

describe("currencies", () => {
  it("knows ISO 4217 codes and their minor units", () => {
    expect([isCurrency("GBP"), isCurrency("YEN"), isCurrency("gbp"), isCurrency(826)]).toEqual([true, false, false, false]);
    expect([minorDigits("GBP"), minorDigits("JPY"), minorDigits("BHD")]).toEqual([2, 0, 3]);
  });
});
