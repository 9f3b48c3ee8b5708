// The create-payment form: amount, currency, optional metadata rows; the API's field errors shown inline; one Idempotency-Key per form.
import { api, formKey, problemText } from "./api.js";
import { clear, clearFieldErrors, currencies, decimal, field, h, select, showFieldError } from "./ui.js";

let rows = 0;

function metadataRow() {
  const n = ++rows;
  const row = h(
    "div",
    { class: "row meta-row" },
    field("Key", h("input", { id: `meta-key-${n}`, class: "meta-key", autocomplete: "off", maxlength: "40" })),
    field("Value", h("input", { id: `meta-value-${n}`, class: "meta-value", autocomplete: "off", maxlength: "500" })),
    h("button", { type: "button", class: "secondary", "aria-label": `Remove metadata row ${n}`, onclick: () => row.remove() }, "Remove"),
  );
  return row;
}

export function createView(main) {
  const amount = h("input", { id: "amount", inputmode: "decimal", autocomplete: "off", placeholder: "86.10" });
  const currency = select("currency", currencies.map((c) => [c, c]), "GBP");
  const metadata = h("div");
  const formError = h("div", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", {}, "Create payment");
  // One key until the payment is created, kept in the tab while an attempt's outcome is unclear (no answer, 503): a
  // retry, even retyped or from this form opened again, replays instead of creating a second payment; with other
  // details the API refuses it (422), which says so, and the next attempt is a new payment.
  const key = formKey("create");
  const unclear = key.pending
    ? h("p", { class: "notice warn", role: "status" }, "An earlier attempt to create a payment got no clear answer and may have gone through: the same details are sent again under its key, so they cannot create a second payment.")
    : null;
  const addRow = () => (metadata.append(metadataRow()), metadata.lastChild.querySelector("input").focus());
  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "create-title" },
    h("h1", { id: "create-title", tabindex: "-1" }, "New payment"),
    unclear,
    h("div", { class: "row" }, field("Amount", amount, "In major units, e.g. 86.10"), field("Currency", currency)),
    h("fieldset", {}, h("legend", {}, "Metadata (optional)"), metadata, h("p", { class: "field-error", id: "metadata-error", hidden: true }), h("button", { type: "button", class: "secondary", onclick: addRow }, "Add metadata")),
    formError,
    h("div", { class: "actions" }, submit, h("a", { href: "#/", class: "button secondary" }, "Back to payments")),
  );

  /** Each error next to its field: amount, currency, a metadata row by its key, else the metadata box or the whole form. */
  function showErrors(errors) {
    const unplaced = [];
    for (const [name, messages] of Object.entries(errors)) {
      const metaKey = name.startsWith("metadata.") && name.slice(9);
      const keyInput = [...form.querySelectorAll(".meta-key")].find((i) => i.value.trim() === metaKey);
      const placed = showFieldError(form, keyInput ? keyInput.id : name.startsWith("metadata") ? "metadata" : name, messages);
      if (!placed) unplaced.push(...messages.map((m) => `${name}: ${m}`));
    }
    if (unplaced.length) clear(formError, h("p", {}, "The request is invalid."), h("ul", {}, unplaced.map((m) => h("li", {}, m)))), (formError.hidden = false);
    form.querySelector("[aria-invalid=true]")?.focus();
  }

  /** The body, and the errors found before asking the API (what cannot even be sent as JSON). */
  function read() {
    const errors = {};
    const text = amount.value.trim();
    if (!decimal.test(text)) errors.amount = [text ? "Enter a number, e.g. 86.10." : "Enter an amount."];
    const body = { amount: Number(text), currency: currency.value };
    for (const row of metadata.children) {
      const [k, v] = [...row.querySelectorAll("input")];
      const name = k.value.trim();
      if (!name && !v.value) continue;
      if (!name || Object.hasOwn(body.metadata ?? {}, name)) errors[k.id] = [name ? "This key is already used." : "Enter a key, or remove the row."];
      else body.metadata = { ...body.metadata, [name]: v.value };
    }
    return { body, errors };
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    clearFieldErrors(form);
    formError.hidden = true;
    const { body, errors } = read();
    if (Object.keys(errors).length) return showErrors(errors);
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const payment = await key.send((use) => api("/api/payments", { method: "POST", body, idempotencyKey: use() }));
      // The list is fed by a read model and shows the payment a moment later; its own page reads it at once.
      location.hash = `#/payments/${payment.id}`;
    } catch (error) {
      if (error.problem?.errors) showErrors(error.problem.errors);
      else if (error.status !== 401) clear(formError, h("p", {}, problemText(error))), (formError.hidden = false);
      submit.disabled = false;
      submit.textContent = "Create payment";
    }
  });
  clear(main, form);
}
