// Shared by the views: elements built from data (never from HTML strings), fields with inline errors, money, times, statuses.
export const currencies = ["GBP", "EUR", "USD"];
export const statuses = ["initiated", "created", "settled", "completed", "failed", "cancelled"];
/** What a person may type as an amount; anything else cannot be sent as a JSON number. */
export const decimal = /^-?(\d+\.?\d*|\.\d+)$/;
export const capital = (s) => s[0].toUpperCase() + s.slice(1);

/** h("a", { href, onclick }, ...children): attributes, on* listeners, children (text, nodes, arrays; null and false skipped). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {}))
    if (value == null || value === false) continue;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  return clear(el, children);
}

export const clear = (el, ...children) => (el.replaceChildren(...children.flat(Infinity).filter((c) => c != null && c !== false)), el);

/** Cells carry their column's name (data-label), shown when narrow screens turn rows into cards. */
export const table = (columns, body, caption) =>
  h("table", { hidden: true }, caption && h("caption", { class: "visually-hidden" }, caption), h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))), body);
export const row = (attrs, columns, values) => h("tr", attrs, values.map((v, i) => h("td", { "data-label": columns[i] }, v)));

/** A <dl> of [term, description] pairs (falsy ones skipped); nothing when there are none. */
export function dl(cls, pairs) {
  const items = pairs.filter(Boolean);
  return items.length ? h("dl", { class: cls }, items.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])) : null;
}

/** A labelled control with the slot for its inline error, which the control names in aria-describedby. */
export function field(label, control, hint) {
  const id = control.id;
  control.setAttribute("aria-describedby", hint ? `${id}-hint ${id}-error` : `${id}-error`);
  return h("div", { class: "field" }, h("label", { for: id }, label), hint && h("p", { class: "hint", id: `${id}-hint` }, hint), control, h("p", { class: "field-error", id: `${id}-error`, hidden: true }));
}

/** Shows messages in the error slot of the control with this id; false when the form has no such slot. */
export function showFieldError(form, id, messages) {
  const slot = form.querySelector(`#${CSS.escape(id)}-error`);
  if (!slot) return false;
  slot.textContent = messages.join(" ");
  slot.hidden = false;
  form.querySelector(`#${CSS.escape(id)}`)?.setAttribute("aria-invalid", "true");
  return true;
}

export function clearFieldErrors(form) {
  for (const slot of form.querySelectorAll(".field-error")) slot.hidden = true;
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

export const select = (id, options, value) => h("select", { id, name: id }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));

function digits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** 86.1 GBP -> "86.10": as many decimals as the currency has. */
export const amountText = (amount, currency) => amount.toLocaleString(undefined, { minimumFractionDigits: digits(currency), maximumFractionDigits: digits(currency) });
export const money = (amount, currency) => `${amountText(amount, currency)} ${currency}`;

/** a - b in the currency's minor units, so 86.1 - 0.3 is 85.8 and not 85.79999. */
export function minus(a, b, currency) {
  const scale = 10 ** digits(currency);
  return (Math.round(a * scale) - Math.round(b * scale)) / scale;
}

/** "12 s ago", "3 min ago", "5 h ago", "2 d ago". */
export function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  const [unit, size] = s < 60 ? ["s", 1] : s < 3600 ? ["min", 60] : s < 86400 ? ["h", 3600] : ["d", 86400];
  return `${Math.floor(s / size)} ${unit} ago`;
}

/** "320 ms", "4.2 s", "3 min 5 s". */
export function duration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** A <time> with the local time to the millisecond, and the date unless it is today. */
export function time(iso) {
  const d = new Date(iso);
  const clock = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false });
  return h("time", { datetime: iso, title: d.toString() }, d.toDateString() === new Date().toDateString() ? clock : `${d.toLocaleDateString()} ${clock}`);
}

const marks = { initiated: "○", created: "◔", settled: "◑", completed: "✓", failed: "✕", cancelled: "⊘" };

/** A status in words with a mark; the colour only repeats what the words say. */
export const statusBadge = (status, stalled) =>
  h("span", { class: `status status-${status}${stalled ? " is-stalled" : ""}` }, h("span", { "aria-hidden": "true" }, marks[status] ?? "•"), ` ${capital(status)}`, stalled && " · stalled");
