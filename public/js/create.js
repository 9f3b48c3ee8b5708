// The create-payment form: amount, currency, optional metadata rows; the API's field errors shown inline; one Idempotency-Key per submitted form.
import { api, ApiError, idempotencyKey, problemText } from "./api.js";
import { clear, clearFieldErrors, currencies, field, h, select, showFieldError } from "./ui.js";

let rowCount = 0;

function metadataRow(onRemove) {
  const n = ++rowCount;
  const key = h("input", { id: `meta-key-${n}`, class: "meta-key", autocomplete: "off", maxlength: "40" });
  const value = h("input", { id: `meta-value-${n}`, class: "meta-value", autocomplete: "off", maxlength: "500" });
  const row = h(
    "div",
    { class: "meta-row" },
    field("Key", key),
    field("Value", value),
    h("button", { type: "button", class: "secondary", "aria-label": `Remove metadata row ${n}`, onclick: () => (row.remove(), onRemove()) }, "Remove"),
  );
  return row;
}

export function createView(main) {
  const amount = h("input", { id: "amount", name: "amount", inputmode: "decimal", autocomplete: "off", placeholder: "86.10" });
  const currency = select("currency", "currency", currencies.map((c) => [c, c]), "GBP");
  const rows = h("div", { class: "meta-rows" });
  const metadataError = h("p", { class: "field-error", id: "metadata-error", hidden: true });
  const formError = h("div", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit" }, "Create payment");
  let key = idempotencyKey();
  const changed = () => (key = idempotencyKey());
  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "create-title" },
    h("h1", { id: "create-title", tabindex: "-1" }, "New payment"),
    h("div", { class: "row" }, field("Amount", amount, "In major units, e.g. 86.10"), field("Currency", currency)),
    h(
      "fieldset",
      { class: "metadata" },
      h("legend", {}, "Metadata (optional)"),
      rows,
      metadataError,
      h("button", { type: "button", class: "secondary", onclick: () => (rows.append(metadataRow(changed)), rows.lastChild.querySelector("input").focus(), changed()) }, "Add metadata"),
    ),
    formError,
    h("div", { class: "actions" }, submit, h("a", { href: "#/", class: "button secondary" }, "Back to payments")),
  );
  // Another key once the form says something else: the API refuses a key reused with a different body.
  form.addEventListener("input", changed);

  function showErrors(errors) {
    const unplaced = [];
    for (const [name, messages] of Object.entries(errors)) {
      if (name === "amount" || name === "currency") showFieldError(form, name, messages);
      else if (name.startsWith("metadata")) {
        const metaKey = name.slice("metadata.".length);
        const input = [...rows.querySelectorAll(".meta-key")].find((i) => metaKey && i.value.trim() === metaKey);
        if (!input || !showFieldError(form, input.id, messages)) showFieldError(form, "metadata", messages);
      } else unplaced.push(...messages.map((m) => `${name}: ${m}`));
    }
    if (unplaced.length) showFormError("The request is invalid", unplaced);
    form.querySelector("[aria-invalid=true], .field-error:not([hidden])")?.closest(".field, fieldset")?.querySelector("input, select")?.focus();
  }

  function showFormError(text, items = []) {
    clear(formError, h("p", {}, text), items.length > 0 && h("ul", {}, items.map((i) => h("li", {}, i))));
    formError.hidden = false;
  }

  /** The body, or field errors found before asking the API (what cannot even be sent as JSON). */
  function read() {
    const errors = {};
    const text = amount.value.trim();
    if (!text) errors.amount = ["Enter an amount."];
    else if (!/^-?(\d+\.?\d*|\.\d+)$/.test(text)) errors.amount = ["Enter a number, e.g. 86.10."];
    const metadata = {};
    for (const row of rows.children) {
      const k = row.querySelector(".meta-key");
      const v = row.querySelector(".meta-value");
      if (!k.value.trim() && !v.value) continue;
      if (!k.value.trim()) errors[k.id] = ["Enter a key, or remove the row."];
      else if (k.value.trim() in metadata) errors[k.id] = ["This key is already used."];
      else metadata[k.value.trim()] = v.value;
    }
    const body = { amount: Number(text), currency: currency.value };
    if (Object.keys(metadata).length) body.metadata = metadata;
    return { body, errors };
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    clearFieldErrors(form);
    formError.hidden = true;
    const { body, errors } = read();
    if (Object.keys(errors).length) {
      for (const [id, messages] of Object.entries(errors)) showFieldError(form, id, messages);
      form.querySelector("[aria-invalid=true]")?.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const payment = await api("/api/payments", { method: "POST", body, idempotencyKey: key });
      // The list is fed by a read model and shows the payment a moment later; its own page reads it at once.
      location.hash = `#/payments/${payment.id}`;
    } catch (error) {
      if (error instanceof ApiError && error.problem.errors) showErrors(error.problem.errors);
      else if (!(error instanceof ApiError && error.status === 401)) showFormError(problemText(error));
      submit.disabled = false;
      submit.textContent = "Create payment";
    }
  });

  clear(main, form);
}
