// Shared by the views: elements built from data (never from HTML strings), field errors, money, times and statuses.
export const currencies = ["GBP", "EUR", "USD"];
export const statuses = ["initiated", "created", "settled", "completed", "failed", "cancelled"];

/** h("a", { href, onclick }, ...children): attributes, listeners (on*), and children (strings, nodes, arrays; null skipped). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c != null && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  return el;
}

/** A <dl> of [term, description] pairs (falsy pairs skipped), or nothing when there are none. */
export function dl(cls, pairs) {
  const items = pairs.filter(Boolean);
  return items.length ? h("dl", { class: cls }, items.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])) : null;
}

export const clear = (el, ...children) => (el.replaceChildren(), el.append(...[children].flat(Infinity).filter(Boolean)), el);

/** A labelled input (or select) with the slot its inline error goes in. */
export function field(label, control, hint) {
  const id = control.id;
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  control.setAttribute("aria-describedby", [hint && `${id}-hint`, `${id}-error`].filter(Boolean).join(" "));
  return h("div", { class: "field" }, h("label", { for: id }, label), hint && h("p", { class: "hint", id: `${id}-hint` }, hint), control, error);
}

export function showFieldError(form, id, messages) {
  const slot = form.querySelector(`#${CSS.escape(id)}-error`);
  const control = form.querySelector(`#${CSS.escape(id)}`);
  if (!slot) return false;
  slot.textContent = messages.join(" ");
  slot.hidden = false;
  control?.setAttribute("aria-invalid", "true");
  return true;
}

export function clearFieldErrors(form) {
  for (const slot of form.querySelectorAll(".field-error")) (slot.hidden = true), (slot.textContent = "");
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

export const select = (id, name, options, value) =>
  h("select", { id, name }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));

const digitsCache = new Map();
function digitsOf(currency) {
  if (!digitsCache.has(currency)) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
    } catch {}
    digitsCache.set(currency, digits);
  }
  return digitsCache.get(currency);
}

/** 86.1 GBP -> "86.10": the currency's own number of decimals. */
export function amountText(amount, currency) {
  const digits = digitsOf(currency);
  return new Intl.NumberFormat(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(amount);
}
export const money = (amount, currency) => `${amountText(amount, currency)} ${currency}`;

/** a - b in the currency's minor units, so 86.1 - 0.3 is 85.8 and not 85.79999. */
export function minus(a, b, currency) {
  const scale = 10 ** digitsOf(currency);
  return (Math.round(a * scale) - Math.round(b * scale)) / scale;
}

/** "12 s ago", "3 min ago", "5 h ago", "2 d ago". */
export function ago(iso, now = Date.now()) {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** "320 ms", "4.2 s", "3 min 5 s", "2 h 4 min". */
export function duration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const sameDay = (a, b) => a.toDateString() === b.toDateString();

/** A <time> showing the local time to the millisecond (and the date unless today). */
export function time(iso) {
  const d = new Date(iso);
  const clock = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false });
  const text = sameDay(d, new Date()) ? clock : `${d.toLocaleDateString()} ${clock}`;
  return h("time", { datetime: iso, title: d.toString() }, text);
}

const statusMarks = { initiated: "○", created: "◔", settled: "◑", completed: "✓", failed: "✕", cancelled: "⊘" };

/** A status as text with a mark; colour only repeats what the words say. */
export function statusBadge(status, stalled = false) {
  return h(
    "span",
    { class: `status status-${status}${stalled ? " is-stalled" : ""}` },
    h("span", { "aria-hidden": "true" }, statusMarks[status] ?? "•"),
    ` ${status[0].toUpperCase()}${status.slice(1)}`,
    stalled && h("span", { class: "stalled-mark" }, " · stalled"),
  );
}

export const shortId = (id) => id.slice(0, 8);
