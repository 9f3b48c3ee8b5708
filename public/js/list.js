// The payments list: filters, a page of the merchant's payments (newest first), cursor paging with a stack to go back, refreshed every few seconds.
import { api, problemText } from "./api.js";
import { ago, amountText, clear, currencies, field, h, select, shortId, statusBadge, statuses } from "./ui.js";

const pageSize = 20;
const refreshMs = 3000;

// Kept across visits, so coming back from a payment shows the same filters and page.
const state = { filters: { status: "", currency: "", from: "", to: "" }, cursor: null, previous: [] };

/** A date input's day as the ISO instant its local day starts (from) or ends (to). */
function dayBound(day, end) {
  if (!day) return null;
  const [y, m, d] = day.split("-").map(Number);
  return (end ? new Date(y, m - 1, d, 23, 59, 59, 999) : new Date(y, m - 1, d)).toISOString();
}

function query() {
  const { status, currency, from, to } = state.filters;
  const params = new URLSearchParams({ limit: String(pageSize) });
  if (status) params.set("status", status);
  if (currency) params.set("currency", currency);
  if (from) params.set("createdFrom", dayBound(from, false));
  if (to) params.set("createdTo", dayBound(to, true));
  if (state.cursor) params.set("cursor", state.cursor);
  return `/api/payments?${params}`;
}

function row(p) {
  const href = `#/payments/${p.id}`;
  return h(
    "tr",
    { "data-id": p.id },
    h("td", { "data-label": "Payment" }, h("a", { href, class: "mono", "aria-label": `Payment ${p.id}` }, shortId(p.id))),
    h("td", { "data-label": "Status" }, statusBadge(p.status, p.stalled)),
    h("td", { "data-label": "Amount", class: "num" }, amountText(p.amount, p.currency), p.refundedAmount > 0 && h("small", { class: "muted" }, ` (${amountText(p.refundedAmount, p.currency)} refunded)`)),
    h("td", { "data-label": "Currency" }, p.currency),
    h("td", { "data-label": "Created" }, h("time", { datetime: p.initiatedAt, title: new Date(p.initiatedAt).toString() }, ago(p.initiatedAt))),
  );
}

export function listView(main) {
  const f = state.filters;
  const statusSelect = select("filter-status", "status", [["", "Any"], ...statuses.map((s) => [s, s[0].toUpperCase() + s.slice(1)])], f.status);
  const currencySelect = select("filter-currency", "currency", [["", "Any"], ...currencies.map((c) => [c, c])], f.currency);
  const from = h("input", { id: "filter-from", name: "from", type: "date", value: f.from });
  const to = h("input", { id: "filter-to", name: "to", type: "date", value: f.to });
  const filters = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter payments" },
    field("Status", statusSelect),
    field("Currency", currencySelect),
    field("Created from", from),
    field("Created to", to),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply"), h("button", { type: "reset", class: "secondary" }, "Clear")),
  );
  const body = h("tbody");
  const message = h("p", { class: "muted", role: "status" }, "Loading…");
  const prev = h("button", { type: "button", class: "secondary" }, "← Previous");
  const next = h("button", { type: "button", class: "secondary" }, "Next →");
  const pageLabel = h("span", { class: "muted" });
  const refresh = h("button", { type: "button", class: "secondary" }, "Refresh");
  const table = h(
    "table",
    { class: "payments" },
    h("caption", { class: "visually-hidden" }, "Payments, newest first"),
    h("thead", {}, h("tr", {}, ["Payment", "Status", "Amount", "Currency", "Created"].map((t) => h("th", { scope: "col" }, t)))),
    body,
  );
  clear(
    main,
    h("div", { class: "title-row" }, h("h1", { tabindex: "-1" }, "Payments"), h("a", { href: "#/new", class: "button" }, "New payment")),
    filters,
    h("div", { class: "table-tools" }, message, refresh),
    table,
    h("nav", { class: "pager", "aria-label": "Pages" }, prev, pageLabel, next),
  );

  let nextCursor = null;
  let loading = null;
  let timer;
  let gone = false;
  async function load() {
    clearTimeout(timer);
    const controller = new AbortController();
    loading?.abort();
    loading = controller;
    try {
      const page = await api(query(), { signal: controller.signal });
      if (gone) return;
      nextCursor = page.nextCursor;
      clear(body, page.data.map(row));
      table.hidden = page.data.length === 0;
      message.textContent = page.data.length ? `Updated ${new Date().toLocaleTimeString()}` : state.cursor || Object.values(f).some(Boolean) ? "No payments match." : "No payments yet.";
    } catch (e) {
      if (e.name === "AbortError" || gone) return;
      message.textContent = `Could not load the payments. ${problemText(e)}`;
    }
    prev.disabled = state.previous.length === 0;
    next.disabled = !nextCursor;
    pageLabel.textContent = `Page ${state.previous.length + 1}`;
    timer = setTimeout(load, refreshMs);
  }

  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    Object.assign(f, { status: statusSelect.value, currency: currencySelect.value, from: from.value, to: to.value });
    state.cursor = null;
    state.previous = [];
    load();
  });
  filters.addEventListener("reset", () => {
    Object.assign(f, { status: "", currency: "", from: "", to: "" });
    state.cursor = null;
    state.previous = [];
    // The reset restores the inputs' initial values; clear them for good.
    queueMicrotask(() => ((statusSelect.value = ""), (currencySelect.value = ""), (from.value = ""), (to.value = ""), load()));
  });
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    state.previous.push(state.cursor);
    state.cursor = nextCursor;
    load();
  });
  prev.addEventListener("click", () => {
    if (!state.previous.length) return;
    state.cursor = state.previous.pop();
    load();
  });
  refresh.addEventListener("click", () => load());
  prev.disabled = next.disabled = true;
  load();
  return () => {
    gone = true;
    clearTimeout(timer);
    loading?.abort();
  };
}
