// Hostile HTTP requests for the fuzz tests (fast-check), and the API's contract as an oracle: the answers each may get.
//
// A generated request is a valid baseline for its route with zero or more defects applied (a bad id, key, header,
// query or body). The oracle walks the contract in the order the API checks it (media type, body size, key, query,
// id, Idempotency-Key, body, then the payment itself) and names the answers it allows, so a defect that another one
// hides is still judged right. UUIDs and ISO 8601 times are recognised with zod, as the API's contract names them.
import Big from "big.js";
import fc from "fast-check";
import { z } from "zod";
import { keys } from "../setup/constants.ts";

const limits = { bodyBytes: 192 * 1024, amount: 1_000_000, metadataKeys: 50, metadataValue: 500, reason: 500 };
const metadataKeyPattern = /^[A-Za-z0-9_.:-]{1,40}$/;
export const controlChars = /\p{Cc}/u;
/** Text with an unpaired surrogate is not Unicode: it cannot be URI-encoded. */
const unpaired = (s: string) => {
  try {
    encodeURIComponent(s);
    return false;
  } catch {
    return true;
  }
};
/** The currencies the tests configure, with their ISO 4217 minor-unit digits. */
const currencies = { GBP: 2, EUR: 2, USD: 2, JPY: 0, KWD: 3 } as const;
type Currency = keyof typeof currencies;

export type Fixtures = {
  /** Merchant A's completed payment, created through `reusedKey` with `reusedBody`. */
  own: Fixture;
  /** Merchant B's completed payment. */
  foreign: Fixture;
  reusedKey: string;
  reusedBody: { amount: number; currency: Currency; metadata: Record<string, string> };
  /** Valid UUIDs of no payment, with a fresh one now and then (each fresh id costs a Cosmos query). */
  missing: fc.Arbitrary<string>;
};
export type Fixture = { id: string; amount: number; version: number; initiatedAt: string };

export type Route = "create" | "legacyCreate" | "get" | "events" | "cancel" | "refund" | "refunds" | "redrive" | "health" | "openapi";
export type Outcome = { status: number; code: string; fields?: string[] };
type Verdict = { outcomes: Outcome[]; object: boolean };

/** A request as sent, with the answers the contract allows and whether it may reach a payment object. */
export type Case = {
  method: string;
  path: string;
  headers: [string, string][];
  body: Body | undefined;
  outcomes: Outcome[];
  object: boolean;
  defects: string[];
};
export type Body = { bytes: Uint8Array; streamed: boolean };

type Target = { kind: "own" | "foreign" | "missing" | "bad"; id: string };
type Parts = {
  route: Route;
  method: string;
  path?: string;
  target: Target;
  query: [string, string][];
  rawQuery: string;
  auth: string | undefined;
  contentType: string | undefined;
  idempotencyKey: string | undefined;
  requestId: string | undefined;
  body: Body | undefined;
  noise: [string, string][];
  defects: string[];
};

// ---- hostile values ----

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const utf8 = (s: string) => encoder.encode(s);

const prototypeKeys = ["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "__defineGetter__", "isPrototypeOf"];

const injections = [
  "' OR '1'='1", "'; DROP TABLE payments; --", '" OR ""="', "1 OR 1=1", "admin'--", "SELECT * FROM c WHERE c.id != ''", "') OR true --",
  '{"$gt":""}', '{"$ne":null}', '{"$where":"sleep(1000)"}', "$where", "[$ne]=1", "../", "../../../etc/passwd", "..\\..\\windows\\win.ini",
  "%2e%2e%2f", "%2e%2e/", "..%2f", "%252e%252e%252f", "....//", "..;/", "/%2e%2e/%2e%2e/", "%c0%ae%c0%ae/", "\u0000", "a\u0000b", "%00",
  "\r\nX-Injected: 1", "%0d%0aX-Injected:%201", "\n", "${7*7}", "{{7*7}}", "#{7*7}", "%s%s%s%n", "<script>alert(1)</script>", "javascript:alert(1)",
  "__proto__[polluted]=1", "constructor.prototype.polluted", "\u202eRTL", "\u200b", "\ufeff", "💸", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗", "\ud800", "\udfff\ud800",
  "ＧＢＰ", "ГБП", "null", "undefined", "NaN", "[object Object]", "", " ",
];

const controlChar = fc.constantFrom(..."\u0000\u0001\u0007\u0008\t\n\u000b\u000c\r\u001b\u001f\u007f\u0080\u0085\u009b\u009f".split(""));

/** Strings an attacker would try: injections, prototype keys, any code points, control characters, long runs. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...injections) },
  { weight: 1, arbitrary: fc.constantFrom(...prototypeKeys) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 16 }) },
  { weight: 1, arbitrary: fc.string({ unit: controlChar, minLength: 1, maxLength: 4 }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("A", "é", "💸", "\u0000"), fc.integer({ min: 41, max: 3000 })).map(([c, n]) => c.repeat(n)) },
);

/** Header values can hold only visible ASCII, spaces and tabs: anything else is percent-escaped (CR LF included). */
function headerSafe(s: string) {
  if (/^[\x20-\x7e\t]*$/.test(s)) return s;
  let out = "";
  for (const b of utf8(s)) out += (b >= 0x20 && b <= 0x7e) || b === 0x09 ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, "0")}`;
  return out;
}
/** What a header value becomes on the wire (leading and trailing whitespace is not part of it; an empty one is not sent). */
const onTheWire = (s: string) => s.replace(/^[\t ]+|[\t ]+$/g, "");
const received = (s: string | undefined) => (s === undefined || onTheWire(s) === "" ? undefined : onTheWire(s));

/** JSON number texts that are not what they seem: non-finite, negative zero, out of range, or not JSON at all. */
const numberTokens = [
  "NaN", "Infinity", "-Infinity", "1e309", "-1e309", "1e-400", "-0", "0", "0.0", "-0.0", "0e10", "5e-324", "1.7976931348623157e308",
  "9007199254740993", "0x10", "1_000", "+1", ".5", "5.", "01", "1e", "--1", "1.2.3", "١٢٣", "1,5", "1e-7", "0.30000000000000004",
  "100000000000000000000000", "-86.1", "1000000.01",
];

const json = (v: unknown) => JSON.stringify(v);
/** Lone surrogates become U+FFFD, as they do on the way into a URL. */
const wellFormed = (s: string) => Array.from(s, (c) => (c.length === 1 && c >= "\ud800" && c <= "\udfff" ? "\ufffd" : c)).join("");
const encodePart = (s: string) => encodeURIComponent(wellFormed(s));
/** A JSON object's text from key and raw value texts: keys may repeat and values may be anything, valid JSON or not. */
const objectText = (pairs: [string, string][]) => `{${pairs.map(([k, v]) => `${json(k)}:${v}`).join(",")}}`;

const anyJsonText: fc.Arbitrary<string> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).map(json),
  hostileString.map(json),
  fc.constantFrom('{"$gt":""}', '{"__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"polluted":true}}}', "[]", "{}", "null", "true"),
);

/** Integer minor units of a valid amount, as the JSON number a client sends (8610 GBP -> 86.1). */
const validAmount = (currency: Currency, max = limits.amount) =>
  fc.integer({ min: 1, max: Math.min(1e9, max * 10 ** currencies[currency]) }).map((minor) => minor / 10 ** currencies[currency]);

const invalidAmountTexts = new Map<Currency, fc.Arbitrary<string>>();
const invalidAmountText = (currency: Currency): fc.Arbitrary<string> => {
  const known = invalidAmountTexts.get(currency);
  if (known) return known;
  const arb = fc.oneof(
    fc.constantFrom(...numberTokens),
    // More decimals than the currency has.
    fc
      .tuple(fc.integer({ min: 1, max: 1e9 }), fc.integer({ min: currencies[currency] + 1, max: currencies[currency] + 6 }))
      .filter(([m]) => m % 10 !== 0)
      .map(([m, e]) => String(m / 10 ** e)),
    fc.double({ min: limits.amount + 1, max: 1e300, noNaN: true }).map((n) => String(Math.floor(n))),
    fc.double({ max: 0, noNaN: true, noDefaultInfinity: true }).map(String),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
    fc.oneof(validAmount(currency).map(String), hostileString).map(json),
    anyJsonText,
  );
  invalidAmountTexts.set(currency, arb);
  return arb;
};

const currencyText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("gbp", "Gbp", "GBP ", " GBP", "CHF", "XXX", "XTS", "BTC", "EURO", "G B P", "GBP\u0000", "ＧＢＰ", "ГБП", "").map(json),
  hostileString.map(json),
  anyJsonText,
);

const metadataKey = fc.oneof(
  fc.stringMatching(metadataKeyPattern),
  fc.constantFrom("orderId", "constructor", "prototype", "toString", "hasOwnProperty", "a.b:c-d_e"),
);
const metadataValue = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: "grapheme", maxLength: 20 }), fc.constantFrom(...injections)).filter((v) => !controlChars.test(v));
/** Valid metadata, without `__proto__` (see the echo property). */
const validMetadata = fc.dictionary(metadataKey.filter((k) => k !== "__proto__"), metadataValue, { maxKeys: 5 });

const invalidMetadataText: fc.Arbitrary<string> = fc.oneof(
  anyJsonText,
  fc.tuple(hostileString, metadataValue).map(([k, v]) => objectText([[k, json(v)]])),
  fc.tuple(metadataKey, anyJsonText).map(([k, v]) => objectText([[k, v]])),
  fc.tuple(metadataKey, fc.integer({ min: 501, max: 2000 })).map(([k, n]) => objectText([[k, json("v".repeat(n))]])),
  fc.tuple(metadataKey, fc.string({ maxLength: 10 }), controlChar).map(([k, v, c]) => objectText([[k, json(v + c + v)]])),
  fc.integer({ min: 51, max: 120 }).map((n) => objectText(Array.from({ length: n }, (_, i) => [`k${i}`, '"v"'] as [string, string]))),
  fc.integer({ min: 2, max: 1500 }).map((n) => objectText([["a", `${'{"a":'.repeat(n)}"deep"${"}".repeat(n)}`]])),
  fc.constantFrom('{"__proto__":{"polluted":"yes"}}', '{"__proto__":1}', '{"constructor":{"prototype":{"polluted":"yes"}}}', '{"$gt":""}'),
);

/** Key and raw value texts of a valid body for the route; refunds stay within the payment's amount. */
function validPairs(route: Route, fx: Fixtures): fc.Arbitrary<[string, string][]> {
  switch (route) {
    case "create":
    case "legacyCreate": {
      const currency = fc.constantFrom(...(Object.keys(currencies) as Currency[]));
      return currency.chain((c) =>
        fc
          .tuple(validAmount(c), route === "create" ? fc.option(validMetadata, { nil: undefined }) : fc.constant(undefined))
          .map(([amount, metadata]) => [["amount", json(amount)], ["currency", json(c)], ...(metadata ? ([["metadata", json(metadata)]] as [string, string][]) : [])]),
      );
    }
    case "refund":
      return validAmount("GBP", fx.own.amount).map((a) => [["amount", json(a)]]);
    case "cancel":
      return fc.option(metadataValue, { nil: undefined }).map((reason) => (reason === undefined ? [] : [["reason", json(reason)]]));
    default:
      return fc.constant([]);
  }
}

const bodyFields: Partial<Record<Route, string[]>> = {
  create: ["amount", "currency", "metadata"],
  legacyCreate: ["amount", "currency"],
  refund: ["amount"],
  cancel: ["reason"],
};

/** One defect in a body's fields (the rest stays valid), as key and raw value texts. */
function invalidPairs(route: Route, pairs: [string, string][]): fc.Arbitrary<[string, string][]> {
  const without = (key: string) => pairs.filter(([k]) => k !== key);
  const set = (key: string, value: fc.Arbitrary<string>) => value.map((v): [string, string][] => [...without(key), [key, v]]);
  const unknownKey = fc.oneof(fc.constantFrom(...prototypeKeys, "Amount", "amount ", "AMOUNT", "$where", "metadata", "reason", "pad"), hostileString);
  const options: fc.Arbitrary<[string, string][]>[] = [
    // An unknown field (a field of another route's body counts too).
    fc.tuple(unknownKey.filter((k) => !bodyFields[route]!.includes(k)), anyJsonText).map(([k, v]) => [...pairs, [k, v]]),
  ];
  const given = pairs.find(([k]) => k === "currency")?.[1];
  const currency: Currency = given !== undefined && Object.hasOwn(currencies, String(JSON.parse(given))) ? (JSON.parse(given) as Currency) : "GBP";
  if (route !== "cancel") {
    options.push(set("amount", invalidAmountText(currency)), fc.constant(without("amount")));
    // A repeated key (refused as such).
    options.push(invalidAmountText(currency).map((v) => [...pairs, ["amount", v]]));
  }
  if (route === "create" || route === "legacyCreate") options.push(set("currency", currencyText), fc.constant(without("currency")));
  if (route === "create") options.push(set("metadata", invalidMetadataText));
  if (route === "cancel")
    options.push(
      set("reason", anyJsonText.filter((t) => typeof JSON.parse(t) !== "string")),
      set("reason", fc.integer({ min: 501, max: 4000 }).map((n) => json("r".repeat(n)))),
      set("reason", fc.tuple(fc.string({ maxLength: 20 }), controlChar).map(([s, c]) => json(`${s}${c}${s}`))),
    );
  return fc.oneof(...options);
}

/** Whole bodies that are not a JSON object, or not JSON at all. */
const notAnObject = (validText: string): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    {
      weight: 9,
      arbitrary: fc
        .oneof(
          fc.constantFrom("null", "[]", "[{}]", '"amount"', "0", "1", "true", "false", '""', "[[[[]]]]"),
          fc.integer({ min: 100, max: 8000 }).map((n) => `${"[".repeat(n)}${"]".repeat(n)}`),
          fc.integer({ min: 100, max: 2500 }).map((n) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`),
          // Malformed: truncated, trailing garbage, single quotes, comments, trailing commas, byte order marks.
          fc.integer({ min: 0, max: Math.max(0, validText.length - 1) }).map((n) => validText.slice(0, n)),
          fc.constantFrom("}", "]", ",", "x", "/* */", "\u0000", "{}", "\n{").map((s) => validText + s),
          fc.constantFrom(validText.replace(/"/g, "'"), validText.replace(/}$/, ",}"), `// comment\n${validText}`, `\ufeff\ufeff${validText}`),
          fc.constantFrom("{", "{{}}", "{'amount':1}", '{"amount":1', "{amount:1}", "undefined", "NaN", '{"a":"\u0000"}', '{"a":"\\x41"}', '{"a":"\\u12"}'),
          hostileString,
        )
        .map(utf8),
    },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
  );

/** A body over the limit: a valid body padded, or just bytes; some small, some of megabytes. */
const hugeBody = (validPairs: [string, string][]): fc.Arbitrary<Uint8Array> =>
  fc
    .tuple(fc.oneof({ weight: 8, arbitrary: fc.integer({ min: limits.bodyBytes + 1, max: 2 * limits.bodyBytes }) }, { weight: 1, arbitrary: fc.integer({ min: 2 * limits.bodyBytes, max: 3 << 20 }) }), fc.boolean())
    .map(([size, padded]) => (padded ? utf8(objectText([...validPairs, ["pad", json("x".repeat(size))]])) : new Uint8Array(size).fill(0x7b)));

// ---- headers, ids, queries ----

const jsonTypes = ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "Application/Json;charset=UTF-8", 'application/json;charset="utf-8"'];
/** JSON by RFC 9110's grammar, though not in the form the route's own body validator accepts: read as plain JSON. */
const unusualJsonTypes = ["application/json;", "application/json ; charset=utf-8", "application/json; foo", "application/json;;", "application/json; charset", "application/json\t;x=y", "application/json; a=b;", "application/json; a_b=c"];
const otherTypes = [
  "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
  "application/jsonp", "application/json-patch+json", "application/merge-patch+json", "application/problem+json", "application/vnd.api+json",
  "text/json", "json", "application/", "/json", "*/*", "application/json, text/plain", "application/json x", "application/ json", "",
];
const contentTypeOf = (value: string | undefined) => {
  const v = received(value);
  if (v === undefined) return "absent";
  if (/^application\/json(;\s*[a-zA-Z0-9-]+=[^;]+)*$/i.test(v)) return "json";
  return /^application\/json(\s*;.*)?$/i.test(v) ? "unusual" : "other";
};
const otherContentType = fc.oneof(fc.constantFrom(...otherTypes), hostileString.map(headerSafe)).filter((t) => contentTypeOf(t) === "other");

const merchantAuth = fc.constantFrom(`Bearer ${keys.merchantA}`, `Bearer ${keys.merchantARotated}`, `Bearer ${keys.merchantA}\t`, `bearer ${keys.merchantA}`, `BEARER ${keys.merchantA}`);
const badAuth = (area: "api" | "admin") =>
  fc.oneof(
    fc.constantFrom(
      undefined,
      "",
      "Bearer",
      "Bearer ",
      `Bearer  ${keys.merchantA}`,
      `Bearer ${keys.merchantA}x`,
      `Bearer ${keys.merchantA.toUpperCase()}`,
      `Bearer ${keys.merchantA.slice(0, -1)}`,
      `Bearer ${keys.merchantA}, Bearer ${keys.merchantB}`,
      `Basic ${btoa(`${keys.merchantA}:`)}`,
      `Token ${keys.merchantA}`,
      keys.merchantA,
      area === "api" ? `Bearer ${keys.admin}` : `Bearer ${keys.merchantA}`,
      area === "api" ? `Bearer ${keys.admin}` : `Bearer ${keys.merchantB}`,
      "Bearer null",
      "Bearer undefined",
      'Bearer {"$gt":""}',
      "Bearer ' OR '1'='1",
    ),
    fc.integer({ min: 513, max: 70_000 }).map((n) => `Bearer ${"k".repeat(n)}`),
    fc.string({ unit: "binary-ascii", maxLength: 80 }).map((s) => `Bearer ${headerSafe(s)}`),
    hostileString.map(headerSafe),
  );
const callerOf = (auth: string | undefined) => {
  // The scheme's name in any case (RFC 9110), then one space and the key.
  const key = /^bearer (.*)$/is.exec(onTheWire(auth ?? ""))?.[1];
  if (key === keys.merchantA || key === keys.merchantARotated) return "A";
  if (key === keys.merchantB) return "B";
  return key === keys.admin ? "admin" : null;
};

const printable = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
const validIdempotencyKey = fc.string({ unit: printable, minLength: 1, maxLength: 255 });
const badIdempotencyKey = fc
  .oneof(
    fc.constantFrom("", " ", "a b", "key\twith\ttab"),
    fc.integer({ min: 256, max: 20_000 }).map((n) => "k".repeat(n)),
    fc.tuple(validIdempotencyKey, fc.constantFrom(" ", "\t"), validIdempotencyKey).map(([a, s, b]) => `${a}${s}${b}`.slice(0, 255)),
    hostileString.map(headerSafe),
  )
  .filter((k) => received(k) !== undefined && !/^[\x21-\x7e]{1,255}$/.test(onTheWire(k)));

const requestIds = fc.oneof(
  fc.constant(undefined),
  fc.stringMatching(/^[\w.:-]{1,128}$/),
  fc.integer({ min: 129, max: 1000 }).map((n) => "r".repeat(n)),
  hostileString.map(headerSafe),
);

const noiseHeaderNames = ["x-forwarded-for", "x-real-ip", "cf-connecting-ip", "forwarded", "cookie", "x-http-method-override", "x-original-url", "accept", "user-agent", "referer", "origin", "if-match", "range", "x-request-id", "__proto__", "constructor"];
const noiseHeaders = fc.array(fc.tuple(fc.constantFrom(...noiseHeaderNames), fc.oneof(hostileString, fc.constantFrom("DELETE", "/admin/payments", "127.0.0.1", "__proto__=1; constructor=2", "*/*"))).map(([n, v]): [string, string] => [n, headerSafe(v)]), { maxLength: 3 });

const uuidSchema = z.uuid();
const isUuid = (s: string) => uuidSchema.safeParse(s).success;

/** Ids that are not UUIDs: mangled UUIDs and hostile strings. */
const badId = fc
  .oneof(
    fc.tuple(fc.uuid(), fc.integer({ min: 0, max: 35 }), fc.constantFrom("g", "z", "-", " ", "", "00", "\u0000", "０", "%")).map(([u, i, c]) => u.slice(0, i) + c + u.slice(i + 1)),
    fc.uuid().map((u) => u.slice(0, 14) + "0" + u.slice(15)),
    fc.uuid().map((u) => u.slice(0, 14) + "9" + u.slice(15)),
    fc.uuid().chain((u) => fc.constantFrom(`{${u}}`, `urn:uuid:${u}`, u.replace(/-/g, ""), u.replace(/-/g, "_"), ` ${u}`, `${u} `, `${u}\u0000`, `${u}/..`, `${u}%00`, `${u}'--`, `${u}.json`)),
    fc.constantFrom("1", "-1", "0", "null", "undefined", "[object Object]", "me", "payments", "%2e%2e", "..%2f..%2fadmin", "…"),
    hostileString,
  )
  .filter((id) => id !== "" && id !== "." && id !== ".." && !isUuid(id));

// ---- queries ----

/** A whole number written in decimal digits only (up to 15 of them), within [min, max]: nothing else is coerced. */
const wholeNumber = (min: number, max: number) => (v: string | string[]) => typeof v === "string" && /^[0-9]{1,15}$/.test(v) && Number(v) >= min && Number(v) <= max;
const positiveInt = wholeNumber(1, Number.MAX_SAFE_INTEGER);
const datetime = z.iso.datetime({ offset: true });
const querySchemas: Partial<Record<Route, Record<string, (v: string | string[]) => boolean>>> = {
  get: { atVersion: positiveInt, asOf: (v) => typeof v === "string" && datetime.safeParse(v).success },
  events: { fromVersion: positiveInt, limit: wholeNumber(1, 1000) },
};

const numberStrings = fc.oneof(
  fc.constantFrom(...numberTokens, "", " ", "1 ", "٣", "1e3", "0x10", "0b1", "1.0", "9007199254740992", "-1", "1001", "100000", "1;2"),
  fc.integer({ min: -10, max: 2000 }).map(String),
  fc.double().map(String),
  hostileString,
);
const isoStrings = fc.oneof(
  fc.date({ min: new Date("0001-01-01"), max: new Date("9999-12-31"), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.date({ noInvalidDate: true, min: new Date("1970-01-01"), max: new Date("2100-01-01") }).chain((d) =>
    fc.constantFrom(d.toISOString().slice(0, 19), d.toISOString().slice(0, 10), d.toISOString().replace("Z", "+0100"), d.toISOString().replace("Z", "+25:00"), d.toUTCString(), String(d.getTime()), d.toISOString().toLowerCase()),
  ),
  fc.constantFrom("2020-02-30T00:00:00Z", "2020-13-01T00:00:00Z", "2020-01-01T24:00:00Z", "2020-01-01T00:00:60Z", "now", "yesterday", "0", "-1"),
  hostileString,
);
/** A (decoded) query parameter the route's query schema refuses: unknown, repeated, or a bad value. */
const badQueryPair = (route: Route): fc.Arbitrary<[string, string][]> => {
  const schema = querySchemas[route]!;
  const known = Object.keys(schema);
  return fc.oneof(
    fc.tuple(fc.constantFrom(...known), fc.oneof(numberStrings, isoStrings)).map(([k, v]): [string, string][] => [[k, v]]),
    fc.tuple(fc.oneof(fc.constantFrom(...prototypeKeys, "AtVersion", "atversion", "atVersion[]", "fromVersion", "atVersion", "limit", "status", "$where"), hostileString), fc.oneof(numberStrings, hostileString)).map(([k, v]): [string, string][] => [[k, v]]),
    fc.tuple(fc.constantFrom(...known), fc.integer({ min: 1, max: 3 })).map(([k, v]): [string, string][] => [[k, String(v)], [k, String(v)]]),
  );
};
/** The fields a query fails on (Hono's grouping: a repeated key is an array; keys are decoded; empty keys dropped). */
function queryFields(route: Route, pairs: [string, string][]): string[] {
  const schema = querySchemas[route] ?? {};
  const grouped = new Map<string, string[]>();
  for (const [k, v] of pairs) if (k !== "") grouped.set(k, [...(grouped.get(k) ?? []), v]);
  const bad: string[] = [];
  for (const [k, vs] of grouped) {
    const check = Object.hasOwn(schema, k) ? schema[k] : undefined;
    if (!check || !check(vs.length === 1 ? vs[0]! : vs)) bad.push(k);
  }
  // A point in the past is a version or a time, not both.
  if (route === "get" && bad.length === 0 && grouped.has("atVersion") && grouped.has("asOf")) bad.push("asOf");
  return bad;
}
const queryValue = (pairs: [string, string][], key: string) => pairs.find(([k]) => k === key)?.[1];

// ---- the oracle ----

const problem = (status: number, code: string, fields?: string[]): Verdict => ({ outcomes: [{ status, code, ...(fields ? { fields } : {}) }], object: false });
const success = (status: number): Verdict => ({ outcomes: [{ status, code: "ok" }], object: true });
const atObject = (v: Verdict): Verdict => ({ ...v, object: true });

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const own = (o: Record<string, unknown>, k: string) => (Object.hasOwn(o, k) ? o[k] : undefined);
const isAmount = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0;
/** Decimals of a number as written in its shortest form (1.5e-7 has 8). */
function decimals(n: number) {
  const m = /^-?\d+(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(n));
  return m ? Math.max(0, (m[1]?.length ?? 0) - Number(m[2] ?? 0)) : Infinity;
}
function bodySchemaFields(route: Route, v: unknown): string[] {
  if (!isPlainObject(v)) return ["body"];
  const allowed = bodyFields[route]!;
  const bad = Object.keys(v).filter((k) => !allowed.includes(k));
  // A refund's amount may be left out (all that is left); a create's may not.
  if (route !== "cancel" && !isAmount(own(v, "amount")) && (route !== "refund" || Object.hasOwn(v, "amount"))) bad.push("amount");
  if ((route === "create" || route === "legacyCreate") && typeof own(v, "currency") !== "string") bad.push("currency");
  if (route === "cancel" && Object.hasOwn(v, "reason")) {
    const r = v.reason;
    if (typeof r !== "string" || r.length > limits.reason || controlChars.test(r) || unpaired(r)) bad.push("reason");
  }
  if (route === "create" && Object.hasOwn(v, "metadata")) {
    const m = v.metadata;
    if (!isPlainObject(m)) bad.push("metadata");
    else {
      const entries = Object.keys(m);
      if (entries.length > limits.metadataKeys) bad.push("metadata");
      for (const k of entries) {
        const value = m[k];
        // The error may name the entry or the whole map.
        if (!metadataKeyPattern.test(k) || typeof value !== "string" || value.length > limits.metadataValue || controlChars.test(value) || unpaired(value))
          bad.push(`metadata.${k}`, "metadata");
      }
    }
  }
  return bad;
}

/** The field a create's amount and currency fail on beyond the schema (configured currency, decimals, maximum). */
function amountField(amount: number, currency: string): string | null {
  if (!Object.hasOwn(currencies, currency)) return "currency";
  if (decimals(amount) > currencies[currency as Currency] || amount > limits.amount) return "amount";
  return null;
}

/**
 * What is refused as soon as a POST's body that names a type is parsed, before its route looks at anything: a
 * "__proto__" key at any depth, or a number whose literal is not exactly the number it parses to (more digits than a
 * double carries, or out of its range). Null when nothing is, or the body is not JSON (its route answers that).
 */
function refusedOnParse(p: Parts): string[] | null {
  const text = decoder.decode(p.body?.bytes ?? new Uint8Array());
  const inexact: string[] = [];
  let value: unknown;
  try {
    value = JSON.parse(text.trim() === "" ? "{}" : text, (key, v: unknown, context?: { source?: string }) => {
      if (typeof v === "number" && !(Number.isFinite(v) && new Big(context!.source!).eq(v))) inexact.push(key);
      return v;
    });
  } catch {
    return null;
  }
  const protoKey = (v: unknown): boolean => typeof v === "object" && v !== null && ((!Array.isArray(v) && Object.hasOwn(v, "__proto__")) || Object.values(v).some(protoKey));
  if (protoKey(value)) return ["__proto__"];
  const twice = repeatedKeys(text);
  if (twice.length > 0) return twice;
  return inexact.length > 0 ? inexact : null;
}

/** Whether bytes are UTF-8 (the body is read as such, never with replacement characters). */
function isUtf8(bytes: Uint8Array) {
  try {
    new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Keys that appear more than once in one object of a JSON text (tokens: strings, brackets, colons). */
function repeatedKeys(text: string): string[] {
  const tokens = text.match(/"(?:[^"\\]|\\.)*"|[{}[\]:]/g) ?? [];
  const open: (string[] | null)[] = [];
  const repeated: string[] = [];
  tokens.forEach((t, i) => {
    if (t === "{") open.push([]);
    else if (t === "[") open.push(null);
    else if (t === "}" || t === "]") open.pop();
    else if (t.startsWith('"') && tokens[i + 1] === ":") {
      const key = JSON.parse(t) as string;
      if (open.at(-1)!.includes(key)) repeated.push(key);
      else open.at(-1)!.push(key);
    }
  });
  return repeated;
}

/** The JSON body step: media type, parse, then `then` with the value (`{}` when no JSON body is sent). */
function withBody(p: Parts, then: (value: unknown) => Verdict): Verdict {
  const type = contentTypeOf(p.contentType);
  if (type === "unusual") return withBody({ ...p, contentType: "application/json" }, then); // read as plain JSON
  if (type === "absent") return p.body?.streamed && p.body.bytes.length > 0 ? problem(415, "unsupported_media_type") : then({});
  const text = decoder.decode(p.body?.bytes ?? new Uint8Array());
  if (text.trim() === "") return then({}); // an empty body sent as JSON is no body
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return problem(400, "malformed_json");
  }
  return then(value);
}

function evaluate(p: Parts, fx: Fixtures): Verdict {
  const area = p.route === "health" || p.route === "openapi" ? "none" : p.route === "redrive" ? "admin" : "api";
  const type = contentTypeOf(p.contentType);
  const size = p.body?.bytes.length ?? 0;
  if (area !== "none" && ["POST", "PUT", "PATCH"].includes(p.method)) {
    const hasBody = type !== "absent" || (p.body !== undefined && !p.body.streamed && size > 0);
    if (hasBody && (type === "other" || type === "absent")) return problem(415, "unsupported_media_type");
  }
  if (area === "api" && size > limits.bodyBytes) return problem(413, "payload_too_large");
  const caller = callerOf(p.auth);
  if (area === "api" && caller !== "A" && caller !== "B") return problem(401, "unauthorized");
  if (area === "admin" && caller !== "admin") return caller ? problem(403, "forbidden") : problem(401, "unauthorized");
  if (area === "admin" && size > limits.bodyBytes) return problem(413, "payload_too_large");
  if (area !== "none" && p.method === "POST" && type !== "absent") {
    if (!isUtf8(p.body?.bytes ?? new Uint8Array())) return problem(400, "malformed_json");
    const refused = refusedOnParse(p);
    if (refused) return problem(400, "validation_failed", refused);
  }

  if (area === "none") {
    if (p.path !== (p.route === "health" ? "/health" : "/openapi.json")) return problem(404, "not_found");
    return p.method === "GET" || p.method === "HEAD" ? success(200) : problem(405, "method_not_allowed");
  }
  // Validation runs query, id, headers, body, in that order.
  if (p.route === "get" || p.route === "events") {
    const bad = queryFields(p.route, p.query.map(([k, v]) => [wellFormed(k), wellFormed(v)]));
    if (bad.length > 0) return problem(400, "validation_failed", bad);
  }
  if (p.target.kind === "bad") return problem(404, "payment_not_found");
  const owner = p.target.kind === "own" ? "A" : p.target.kind === "foreign" ? "B" : null;
  const payment = owner === null || owner !== caller ? null : owner === "A" ? fx.own : fx.foreign;
  const notFound = atObject(problem(404, "payment_not_found"));

  if (p.route === "get" || p.route === "events") {
    if (!payment) return notFound;
    if (p.route === "events") return success(200);
    const atVersion = queryValue(p.query, "atVersion");
    if (atVersion !== undefined && Number(atVersion) > payment.version) return atObject(problem(404, "version_not_found"));
    const asOf = queryValue(p.query, "asOf");
    if (asOf !== undefined && !(Date.parse(asOf) >= Date.parse(payment.initiatedAt))) return notFound;
    return success(200);
  }
  if (p.route === "refunds") return payment ? success(200) : notFound;
  if (p.route === "redrive") return p.target.kind === "missing" ? notFound : success(202);

  // Routes with a body: the Idempotency-Key header is validated first.
  const idempotencyKey = received(p.idempotencyKey);
  if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) return problem(400, "validation_failed", ["idempotency-key"]);
  return withBody(p, (value) => {
    const bad = bodySchemaFields(p.route, value);
    if (bad.length > 0) return problem(400, "validation_failed", bad);
    const v = value as Record<string, unknown>;
    if (p.route === "create" || p.route === "legacyCreate") {
      const field = amountField(v.amount as number, v.currency as string);
      if (field) return problem(400, "validation_failed", [field]);
      const created = success(p.route === "create" ? 201 : 200);
      if (caller !== "A" || idempotencyKey !== fx.reusedKey) return created;
      const r = fx.reusedBody;
      const same = v.amount === r.amount && v.currency === r.currency && JSON.stringify(Object.entries((v.metadata as object) ?? {}).sort()) === JSON.stringify(Object.entries(r.metadata).sort());
      return same ? created : atObject(problem(422, "idempotency_key_reused"));
    }
    if (p.route === "cancel") return payment ? atObject(problem(409, "payment_not_cancellable")) : notFound;
    if (v.amount === undefined) return payment ? success(202) : notFound; // the fixtures were never refunded
    const amount = v.amount as number;
    if (amount > limits.amount) return problem(400, "validation_failed", ["amount"]);
    if (!payment) return notFound;
    if (decimals(amount) > currencies.GBP) return atObject(problem(400, "validation_failed", ["amount"]));
    return amount > payment.amount ? atObject(problem(422, "refund_exceeds_amount")) : success(202);
  });
}

// ---- requests: a valid baseline per route, defects, and noise ----

const routeShape: Record<Route, { method: string; suffix?: string; prefix?: string; body?: "required" | "optional"; query?: boolean; idempotency?: boolean }> = {
  create: { method: "POST", body: "required", idempotency: true },
  legacyCreate: { method: "POST", body: "required", idempotency: true },
  get: { method: "GET", prefix: "/api/payments/", suffix: "", query: true },
  events: { method: "GET", prefix: "/api/payments/", suffix: "/events", query: true },
  cancel: { method: "POST", prefix: "/api/payments/", suffix: "/cancel", body: "optional", idempotency: true },
  refund: { method: "POST", prefix: "/api/payments/", suffix: "/refunds", body: "optional", idempotency: true },
  refunds: { method: "GET", prefix: "/api/payments/", suffix: "/refunds" },
  redrive: { method: "POST", prefix: "/admin/payments/", suffix: "/redrive" },
  health: { method: "GET" },
  openapi: { method: "GET" },
};
const fixedPaths: Partial<Record<Route, string>> = { create: "/api/payments", legacyCreate: "/api/payment/create", health: "/health", openapi: "/openapi.json" };

type Defect = (p: Parts) => fc.Arbitrary<Parts>;
const defect = (name: string, change: (p: Parts) => fc.Arbitrary<Partial<Parts>>): Defect => (p) => change(p).map((c) => ({ ...p, ...c, defects: [...p.defects, name] }));

const bodyOf = (pairs: [string, string][]) => utf8(objectText(pairs));
const pairsOf = (p: Parts): [string, string][] => {
  try {
    const v = JSON.parse(decoder.decode(p.body?.bytes ?? utf8("{}"))) as Record<string, unknown>;
    return isPlainObject(v) ? Object.entries(v).map(([k, x]): [string, string] => [k, json(x)]) : [];
  } catch {
    return [];
  }
};

function defectsFor(route: Route, fx: Fixtures): { weight: number; arbitrary: fc.Arbitrary<Defect> }[] {
  const shape = routeShape[route];
  const area = route === "redrive" ? "admin" : "api";
  const list: { weight: number; arbitrary: fc.Arbitrary<Defect> }[] = [];
  const add = (weight: number, d: Defect) => list.push({ weight, arbitrary: fc.constant(d) });
  if (route === "health" || route === "openapi") {
    const path = fixedPaths[route]!;
    add(6, defect("method", () => fc.record({ method: fc.constantFrom("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PURGE", "PROPFIND", "MKCOL", "COPY", "LOCK", "SEARCH"), body: fc.option(fc.oneof({ weight: 19, arbitrary: hostileString.map(utf8) }, { weight: 1, arbitrary: hugeBody([]) }).map((bytes) => ({ bytes, streamed: false })), { nil: undefined }) })));
    add(3, defect("path", () => fc.record({ path: fc.constantFrom(`${path}/`, path.toUpperCase(), `${path}.json`, `${path}%20`, `${path};`, `${path}/x`, `${path}%2F`, `${path}%00`, `${path}/..%2f`, `//${path.slice(1)}`) })));
    return list;
  }
  add(3, defect("key", () => fc.record({ auth: badAuth(area) })));
  if (route !== "create" && route !== "legacyCreate") {
    add(4, defect("not a UUID", () => fc.record({ target: badId.map((id): Target => ({ kind: "bad", id })) })));
    add(2, defect("no such payment", () => fc.record({ target: fx.missing.map((id): Target => ({ kind: "missing", id })) })));
    if (route !== "redrive") {
      add(1, defect("another merchant's payment", () => fc.constant({ target: { kind: "foreign", id: fx.foreign.id } as Target })));
      add(1, defect("another merchant", () => fc.constant({ auth: `Bearer ${keys.merchantB}` })));
    }
  }
  if (shape.query) {
    add(6, defect("query", (p) => badQueryPair(route).map((bad) => ({ query: [...p.query, ...bad] }))));
    if (route === "get")
      add(2, defect("version or time the payment never had", () =>
        fc.oneof(
          fc.integer({ min: fx.own.version + 1, max: 1_000_000 }).map((v) => ({ query: [["atVersion", String(v)]] as [string, string][] })),
          fc.date({ min: new Date("1970-01-01"), max: new Date(Date.parse(fx.own.initiatedAt) - 1000), noInvalidDate: true }).map((d) => ({ query: [["asOf", d.toISOString()]] as [string, string][] })),
        ),
      ));
  }
  if (shape.idempotency) add(2, defect("Idempotency-Key", () => fc.record({ idempotencyKey: badIdempotencyKey })));
  if (shape.method === "POST") {
    add(2, defect("content type", () => fc.record({ contentType: otherContentType })));
    add(1, defect("body without content type", (p) => fc.constant({ contentType: undefined, body: p.body && p.body.bytes.length > 0 ? p.body : { bytes: utf8("{}"), streamed: false } })));
  }
  if (shape.body) {
    add(1, defect("JSON with unusual parameters", () => fc.record({ contentType: fc.constantFrom(...unusualJsonTypes) })));
    add(1, defect("streamed body without content type", (p) => fc.constant({ contentType: undefined, body: { bytes: p.body && p.body.bytes.length > 0 ? p.body.bytes : utf8("{}"), streamed: true } })));
    add(1, defect("huge body", (p) => fc.record({ body: fc.tuple(hugeBody(pairsOf(p)), fc.boolean()).map(([bytes, streamed]) => ({ bytes, streamed })) })));
    add(shape.body === "required" ? 12 : 8, defect("body field", (p) => invalidPairs(route, pairsOf(p)).map((pairs) => ({ contentType: p.contentType ?? "application/json", body: { bytes: bodyOf(pairs), streamed: false } }))));
    add(4, defect("not a JSON object", (p) => notAnObject(objectText(pairsOf(p))).map((bytes) => ({ contentType: p.contentType ?? "application/json", body: { bytes, streamed: false } }))));
    add(1, defect("empty JSON body", () => fc.constant({ contentType: "application/json", body: { bytes: new Uint8Array(), streamed: false } })));
  }
  if (route === "refund")
    add(4, defect("more than the payment", () => fc.integer({ min: fx.own.amount * 100 + 1, max: limits.amount * 100 }).map((minor) => ({ contentType: "application/json", body: { bytes: bodyOf([["amount", json(minor / 100)]]), streamed: false } }))));
  if (route === "create" || route === "legacyCreate") add(2, defect("Idempotency-Key of another request", () => fc.constant({ idempotencyKey: fx.reusedKey })));
  if (route === "redrive") add(1, defect("content type", () => fc.record({ contentType: otherContentType, body: fc.option(hostileString.map((s) => ({ bytes: utf8(s), streamed: false })), { nil: undefined }) })));
  return list;
}

/** A valid request for the route (cancel's is refused all the same: the fixtures are completed). */
function baseline(route: Route, fx: Fixtures, idempotencyKeys: fc.Arbitrary<string | undefined>): fc.Arbitrary<Parts> {
  const shape = routeShape[route];
  const area = route === "health" || route === "openapi" ? "none" : route === "redrive" ? "admin" : "api";
  const auth = area === "admin" ? fc.constant(`Bearer ${keys.admin}`) : area === "api" ? merchantAuth : fc.option(hostileString.map(headerSafe), { nil: undefined });
  const param = (key: string, value: fc.Arbitrary<string>) => value.map((v): [string, string][] => [[key, v]]);
  const none = fc.constant<[string, string][]>([]);
  const query =
    route === "get"
      ? fc.oneof(none, param("atVersion", fc.integer({ min: 1, max: fx.own.version }).map(String)), param("asOf", fc.constant(new Date(Date.parse(fx.own.initiatedAt) + 60_000).toISOString())))
      : route === "events"
        ? fc.oneof(none, param("fromVersion", fc.integer({ min: 1, max: 10 }).map(String)), param("limit", fc.integer({ min: 1, max: 1000 }).map(String)))
        : none;
  const bodyText = shape.body ? validPairs(route, fx).map(bodyOf) : fc.constant(undefined);
  return fc
    .record({
      query,
      auth,
      jsonType: fc.constantFrom(...jsonTypes),
      idempotencyKey: shape.idempotency ? idempotencyKeys : fc.option(hostileString.map(headerSafe), { nil: undefined }),
      requestId: requestIds,
      noise: noiseHeaders,
      rawQuery: shape.query ? fc.constant("") : fc.oneof(fc.constant(""), hostileString.map((s) => `?${s.replace(/#/g, "%23")}`)),
      bodyBytes: bodyText,
      // Headers that routes without a body ignore.
      stray: fc.option(fc.oneof(otherContentType, fc.constantFrom(...unusualJsonTypes)), { nil: undefined, freq: 3 }),
      head: fc.boolean(),
    })
    .map(({ query, auth, jsonType, idempotencyKey, requestId, noise, rawQuery, bodyBytes, stray, head }) => {
      const withoutBody = route === "cancel" && bodyBytes !== undefined && bodyBytes.length === 2; // `{}`: send no body at all
      const hasBody = bodyBytes !== undefined && !withoutBody;
      return {
        route,
        method: shape.method === "GET" && head && route !== "health" && route !== "openapi" ? "HEAD" : shape.method,
        ...(fixedPaths[route] ? { path: fixedPaths[route] } : {}),
        target: { kind: "own", id: fx.own.id } as Target,
        query,
        rawQuery,
        auth,
        contentType: hasBody ? jsonType : shape.method === "GET" ? stray : undefined,
        idempotencyKey,
        requestId,
        body: hasBody ? { bytes: bodyBytes, streamed: false } : undefined,
        noise,
        defects: [],
      } satisfies Parts;
    });
}

const describeCase = (c: Omit<Case, "outcomes" | "object">) => {
  const cut = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s);
  const body = c.body ? ` body${c.body.streamed ? " (streamed)" : ""}=${JSON.stringify(cut(decoder.decode(c.body.bytes.subarray(0, 400)), 200))} (${c.body.bytes.length} bytes)` : "";
  return `[${c.defects.join(", ") || "valid"}] ${c.method} ${cut(c.path, 300)} headers=${JSON.stringify(c.headers.map(([n, v]) => [n, cut(v, 80)]))}${body}`;
};

function toCase(p: Parts, fx: Fixtures): Case {
  const shape = routeShape[p.route];
  const query = p.query.length > 0 ? `?${p.query.map(([k, v]) => `${encodePart(k)}=${encodePart(v)}`).join("&")}` : p.rawQuery;
  const path = (p.path ?? `${shape.prefix}${encodePart(p.target.id)}${shape.suffix}`) + query;
  const headers: [string, string][] = [...p.noise];
  if (p.auth !== undefined) headers.push(["authorization", p.auth]);
  if (p.contentType !== undefined) headers.push(["content-type", p.contentType]);
  if (p.idempotencyKey !== undefined) headers.push(["idempotency-key", p.idempotencyKey]);
  if (p.requestId !== undefined) headers.push(["request-id", p.requestId]);
  const verdict = evaluate(p, fx);
  const c = { method: p.method, path, headers, body: p.body, defects: p.defects, ...verdict };
  return Object.assign(c, { [fc.toStringMethod]: () => describeCase(c) });
}

/**
 * Requests for a route: its valid baseline with `defects` of them applied (the Idempotency-Key of a create or refund
 * comes from `idempotencyKeys` unless a defect replaces it).
 */
export function requests(route: Route, fx: Fixtures, opts: { defects: { min: number; max: number }; idempotencyKeys?: fc.Arbitrary<string | undefined> }): fc.Arbitrary<Case> {
  const defects = defectsFor(route, fx);
  const keysArb = opts.idempotencyKeys ?? fc.option(validIdempotencyKey, { nil: undefined });
  return fc
    .tuple(baseline(route, fx, keysArb), fc.array(fc.oneof(...defects), { minLength: opts.defects.min, maxLength: opts.defects.max }))
    .chain(([base, chosen]) => chosen.reduce<fc.Arbitrary<Parts>>((acc, d) => acc.chain(d), fc.constant(base)))
    .map((p) => toCase(p, fx));
}

/** Requests the API must refuse: at least one defect, and no answer the contract allows is a success. */
export const invalidRequests = (route: Route, fx: Fixtures) => requests(route, fx, { defects: { min: 1, max: 2 } }).filter((c) => c.outcomes.every((o) => o.status >= 400));

// ---- paths and methods of no route ----

/** Words that name routes or static files: a generated final segment is never one of them. */
const routeWords = new Set(["livez", "api", "admin", "payments", "payment", "create", "events", "cancel", "refunds", "redrive", "live", "live-tickets", "health", "openapi.json", "read-model", "rebuild", "index.html", "app.css", "js", "favicon.ico"]);
const rawTricks = ["..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e", "..%2f", "..%5c", "%2e%2e%2f", "..;", ";", "%00", "%0d%0a", "%20", "%ff", "%", "%zz", "%c0%ae%c0%ae", "~", "*", "@", "$", "!", "'", "(", ")", ",", ":", "=", "\\", "%5c", "+", "&", "[", "]", "%2F", "%252e%252e", "api", "admin", "payments"];

/** Hono's routing path: percent-decoded where that decodes (decodeURI; a bad sequence is left as it is). */
function routingPath(pathname: string) {
  try {
    return decodeURI(pathname);
  } catch {
    return pathname.replace(/(?:%[0-9A-Fa-f]{2})+/g, (m) => {
      try {
        return decodeURI(m);
      } catch {
        return m;
      }
    });
  }
}

/** The methods served on a path (an id is any one segment), HEAD with GET: another method there is 405. */
const servedPaths: [RegExp, string[]][] = [
  [/^\/api\/payments$/, ["GET", "HEAD", "POST"]],
  [/^\/api\/payment\/create$/, ["POST"]],
  [/^\/api\/payments\/[^/]+$/, ["GET", "HEAD"]],
  [/^\/api\/payments\/[^/]+\/(events|live)$/, ["GET", "HEAD"]],
  [/^\/api\/payments\/[^/]+\/refunds$/, ["GET", "HEAD", "POST"]],
  [/^\/api\/payments\/[^/]+\/(cancel|live-tickets)$/, ["POST"]],
  [/^\/admin\/payments\/[^/]+\/relay$/, ["GET", "HEAD"]],
  [/^\/admin\/(payments\/[^/]+\/redrive|redrive-stalled|read-model\/rebuild)$/, ["POST"]],
  [/^\/(livez|health|openapi\.json)$/, ["GET", "HEAD"]],
];
const methodsServed = (path: string) => servedPaths.filter(([pattern]) => pattern.test(path)).flatMap(([, methods]) => methods);

/** Requests to paths no route serves, or with methods the route does not have. */
export function strayRequests(fx: Fixtures): fc.Arbitrary<Case> {
  const P = fx.own.id;
  const wrongMethod = fc.constantFrom<[string, string]>(
    ["DELETE", `/api/payments/${P}`],
    ["PUT", `/api/payments/${P}`],
    ["PATCH", `/api/payments/${P}`],
    ["POST", `/api/payments/${P}`],
    ["OPTIONS", `/api/payments/${P}`],
    ["GET", `/api/payments/${P}/cancel`],
    ["DELETE", `/api/payments/${P}/cancel`],
    ["PUT", `/api/payments/${P}/refunds`],
    ["DELETE", `/api/payments/${P}/refunds`],
    ["POST", `/api/payments/${P}/events`],
    ["GET", "/api/payment/create"],
    ["PUT", "/api/payment/create"],
    ["DELETE", "/api/payments"],
    ["PATCH", "/api/payments"],
    ["GET", `/admin/payments/${P}/redrive`],
    ["DELETE", `/admin/payments/${P}/redrive`],
    ["TRACE", "/api/payments"],
    ["PROPFIND", `/api/payments/${P}`],
    ["PURGE", `/api/payments/${P}`],
  );
  const finalSegment = fc
    .oneof(hostileString, fc.stringMatching(/^[a-z0-9._~-]{1,12}$/), fc.constantFrom("v2", "graphql", ".env", "wp-login.php", "server-status", ".git", "payments.json", "PAYMENTS"))
    .filter((s) => s !== "" && s !== "." && s !== ".." && !routeWords.has(s) && !isUuid(s))
    .map(encodePart);
  const garbagePath = fc
    .tuple(
      fc.constantFrom("", "/api", "/admin", "/api/payments", `/api/payments/${P}`, "/admin/payments", `/admin/payments/${P}`, "/health", "/openapi.json", "/", "//api", "/API", "/%61pi", "/api%2Fpayments"),
      fc.array(fc.constantFrom(...rawTricks), { maxLength: 3 }),
      finalSegment,
    )
    .map(([prefix, tricks, last]) => [prefix, ...tricks, last].join("/"));
  const methods = fc.constantFrom("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PURGE", "PROPFIND", "get", "post", "delete");
  return fc
    .record({
      target: fc.oneof(wrongMethod, fc.tuple(methods, garbagePath)),
      auth: fc.oneof(merchantAuth, fc.constant(`Bearer ${keys.admin}`), badAuth("api")),
      contentType: fc.option(fc.oneof(fc.constantFrom(...jsonTypes, ...unusualJsonTypes), otherContentType), { nil: undefined }),
      body: fc.option(fc.oneof({ weight: 9, arbitrary: hostileString.map(utf8) }, { weight: 1, arbitrary: hugeBody([]) }), { nil: undefined }),
      requestId: requestIds,
      noise: noiseHeaders,
      query: fc.oneof(fc.constant(""), hostileString.map((s) => `?${encodePart(s)}`)),
    })
    .map(({ target: [rawMethod, path], auth, contentType, body, requestId, noise, query }) => {
      const method = /^(get|post|delete|put|head|options)$/i.test(rawMethod) ? rawMethod.toUpperCase() : rawMethod;
      const sendsBody = body !== undefined && method !== "GET" && method !== "HEAD";
      const headers: [string, string][] = [...noise, ["authorization", auth ?? ""]];
      if (contentType !== undefined) headers.push(["content-type", contentType]);
      if (requestId !== undefined) headers.push(["request-id", requestId]);
      const routed = routingPath(new URL(`http://pay.test${path}`).pathname);
      const area = routed.startsWith("/api/") ? "api" : routed.startsWith("/admin/") ? "admin" : "none";
      const caller = callerOf(auth);
      const size = sendsBody ? body.length : 0;
      let outcomes: Outcome[];
      const type = contentTypeOf(contentType);
      if (area !== "none" && ["POST", "PUT", "PATCH"].includes(method) && (type !== "absent" || size > 0) && (type === "other" || type === "absent")) outcomes = [{ status: 415, code: "unsupported_media_type" }];
      else if (area === "api" && size > limits.bodyBytes) outcomes = [{ status: 413, code: "payload_too_large" }];
      else if ((area === "api" && caller !== "A" && caller !== "B") || (area === "admin" && caller === null)) outcomes = [{ status: 401, code: "unauthorized" }];
      else if (area === "admin" && caller !== "admin") outcomes = [{ status: 403, code: "forbidden" }];
      else if (area === "admin" && size > limits.bodyBytes) outcomes = [{ status: 413, code: "payload_too_large" }];
      else if (methodsServed(routed).length > 0 && !methodsServed(routed).includes(method)) outcomes = [{ status: 405, code: "method_not_allowed" }];
      else {
        // A path one segment below /api/payments/ is the read route with a bad id: its query is validated first.
        const read = (method === "GET" || method === "HEAD") && /^\/api\/payments\/[^/]+$/.test(routed) && query !== "";
        outcomes = [{ status: 404, code: "not_found" }, ...(area === "api" ? [{ status: 404, code: "payment_not_found" }] : []), ...(read ? [{ status: 400, code: "validation_failed" }] : [])];
      }
      const c = { method, path: path + query, headers, body: sendsBody ? { bytes: body, streamed: false } : undefined, defects: ["no such route"], outcomes, object: false };
      return Object.assign(c, { [fc.toStringMethod]: () => describeCase(c) });
    });
}
