// The dashboard's entry: the key prompt, the navigation, and the hash router that swaps views (each view returns its clean-up).
import { api, ApiError, forgetKey, merchantKey, problemText, rememberKey } from "./api.js";
import { createView } from "./create.js";
import { listView } from "./list.js";
import { paymentView } from "./payment.js";
import { clear, field, h } from "./ui.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let leave = () => {};

const routes = [
  [/^#?\/?$/, listView, "Payments"],
  [/^#\/new$/, createView, "New payment"],
  [/^#\/payments\/([0-9a-fA-F-]{36})$/, paymentView, "Payment"],
];

function drawNav() {
  clear(
    nav,
    merchantKey() && [
      h("a", { href: "#/" }, "Payments"),
      h("a", { href: "#/new" }, "New payment"),
      h("button", { type: "button", class: "link", onclick: () => (forgetKey(), render("You have forgotten the key; this tab no longer holds it.")) }, "Forget key"),
    ],
  );
}

function keyPrompt(message) {
  const input = h("input", { id: "merchant-key", name: "key", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const status = h("p", { class: "form-error", role: "alert", hidden: !message }, message ?? "");
  const button = h("button", { type: "submit" }, "Continue");
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "key-title" },
    h("h1", { id: "key-title" }, "Your merchant key"),
    h("p", {}, "The dashboard calls the API with it. It stays in this browser tab only and is gone when the tab closes."),
    field("Merchant API key", input),
    status,
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return ((status.textContent = "Enter your key."), (status.hidden = false));
    rememberKey(key);
    button.disabled = true;
    status.hidden = true;
    try {
      // Any authenticated read proves the key; the answer itself is not needed.
      await api("/api/payments?limit=1");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      if (!(error instanceof ApiError) || error.status === 0) {
        forgetKey();
        status.textContent = problemText(error);
        status.hidden = false;
        button.disabled = false;
        return;
      }
    }
    render();
  });
  document.title = "Sign in · Regis Pay";
  clear(main, form);
  input.focus();
}

/** Draws the view of the current hash; without a key, the key prompt (which comes back to the same hash). */
function render(message) {
  leave();
  leave = () => {};
  drawNav();
  if (!merchantKey()) return keyPrompt(message);
  const hash = location.hash;
  for (const [pattern, view, title] of routes) {
    const match = pattern.exec(hash);
    if (!match) continue;
    document.title = `${title} · Regis Pay`;
    clear(main);
    leave = view(main, ...match.slice(1)) ?? (() => {});
    main.querySelector("h1")?.focus({ preventScroll: true });
    return;
  }
  clear(main, h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the payments")));
}

addEventListener("hashchange", () => render());
addEventListener("regis:unauthorized", () => render("The API refused this key (401). Enter a valid merchant key."));
render();
