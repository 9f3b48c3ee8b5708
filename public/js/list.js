// The payments list: filters, a page of the merchant's payments (newest first), cursor paging with a stack to go back, refreshed every few seconds.
import { api, merchantKey, problemText } from "./api.js";
import { ago, amountText, capital, clear, currencies, field, h, row, select, statusBadge, statuses, table } from "./ui.js";

const pageSize = 20;
const refreshMs = 3000;
const noFilters = { status: "", currency: "", from: "", to: "" };
// Kept across visits, so coming back from a payment shows the same filters and page; for the key they were chosen under.
const state = { key: null, filters: { ...noFilters }, cursor: null, previous: [] };

/** A date input's day as the ISO instant its local day starts, or the next one starts (`createdTo` is exclusive). */
function dayBound(day, end) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + (end ? 1 : 0)).toISOString();
}

function query() {
  const { status, currency, from, to } = state.filters;
  const params = new URLSearchParams({ limit: pageSize });
  if (status) params.set("status", status);
  if (currency) params.set("currency", currency);
  if (from) params.set("createdFrom", dayBound(from, false));
  if (to) params.set("createdTo", dayBound(to, true));
  if (state.cursor) params.set("cursor", state.cursor);
  return `/api/payments?${params}`;
}

const columns = ["Payment", "Status", "Amount", "Currency", "Created"];
const paymentRow = (p) =>
  row({ "data-id": p.id }, columns, [
    h("a", { href: `#/payments/${p.id}`, class: "mono", "aria-label": `Payment ${p.id}` }, p.id.slice(0, 8)),
    statusBadge(p.status, p.stalled),
    amountText(p.amount, p.currency),
    p.currency,
    h("time", { datetime: p.initiatedAt, title: p.initiatedAt }, ago(p.initiatedAt)),
  ]);

export function listView(main) {
  // Another key (forgotten, then another merchant's) starts again: a cursor is a position in one merchant's list.
  if (state.key !== merchantKey()) Object.assign(state, { key: merchantKey(), filters: { ...noFilters }, cursor: null, previous: [] });
  const f = state.filters;
  const inputs = {
    status: select("status", [["", "Any"], ...statuses.map((s) => [s, capital(s)])], f.status),
    currency: select("currency", [["", "Any"], ...currencies.map((c) => [c, c])], f.currency),
    from: h("input", { id: "from", type: "date", value: f.from }),
    to: h("input", { id: "to", type: "date", value: f.to }),
  };
  const filters = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter payments" },
    field("Status", inputs.status),
    field("Currency", inputs.currency),
    field("Created from", inputs.from),
    field("Created to", inputs.to),
    h("div", { class: "actions" }, h("button", {}, "Apply"), h("button", { type: "button", class: "secondary", onclick: () => go({ ...noFilters }) }, "Clear")),
  );
  const body = h("tbody");
  const message = h("p", { class: "muted", role: "status" }, "Loading…");
  const prev = h("button", { type: "button", class: "secondary", disabled: true, onclick: () => go(f, state.previous.pop()) }, "← Previous");
  const next = h("button", { type: "button", class: "secondary", disabled: true, onclick: () => go(f, nextCursor, [...state.previous, state.cursor]) }, "Next →");
  const pageLabel = h("span", { class: "muted" });
  const list = table(columns, body, "Payments, newest first");
  const title = h("div", { class: "title-row" }, h("h1", { tabindex: "-1" }, "Payments"), h("a", { href: "#/new", class: "button" }, "New payment"));
  const tools = h("div", { class: "table-tools" }, message, h("button", { type: "button", class: "secondary", onclick: () => load() }, "Refresh"));
  clear(main, title, filters, tools, list, h("nav", { class: "pager", "aria-label": "Pages" }, prev, pageLabel, next));

  let nextCursor = null;
  let loading = null;
  let timer;
  async function load() {
    clearTimeout(timer);
    loading?.abort();
    const controller = (loading = new AbortController());
    try {
      const page = await api(query(), { signal: controller.signal });
      if (controller.signal.aborted) return;
      nextCursor = page.nextCursor;
      clear(body, page.data.map(paymentRow));
      list.hidden = !page.data.length;
      message.textContent = page.data.length ? `Updated ${new Date().toLocaleTimeString()}` : state.cursor || Object.values(f).some(Boolean) ? "No payments match." : "No payments yet.";
    } catch (e) {
      if (controller.signal.aborted) return;
      message.textContent = `Could not load the payments. ${problemText(e)}`;
    }
    prev.disabled = !state.previous.length;
    next.disabled = !nextCursor;
    pageLabel.textContent = `Page ${state.previous.length + 1}`;
    timer = setTimeout(load, refreshMs);
  }

  /** New filters start again at the first page; paging keeps them. */
  function go(filters, cursor = null, previous = state.previous) {
    if (filters !== f) {
      Object.assign(f, filters);
      for (const [name, input] of Object.entries(inputs)) input.value = f[name];
      previous = [];
    }
    Object.assign(state, { cursor, previous });
    // The rows shown belong to the page left: nothing to page from until the new one is read (a double click pages once).
    nextCursor = null;
    prev.disabled = next.disabled = true;
    clear(body);
    list.hidden = true;
    message.textContent = "Loading…";
    load();
  }
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    go(Object.fromEntries(Object.entries(inputs).map(([name, input]) => [name, input.value])));
  });
  load();
  return () => {
    clearTimeout(timer);
    loading?.abort();
  };
}
