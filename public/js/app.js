// The dashboard's entry: the key prompt, the navigation, and the hash router that swaps views (each view returns its clean-up).
import { api, forgetKey, merchantKey, problemText, rememberKey } from "./api.js";
import { createView } from "./create.js";
import { listView } from "./list.js";
import { paymentView } from "./payment.js";
import { clear, field, h } from "./ui.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const routes = [
  [/^#?\/?$/, listView, "Payments"],
  [/^#\/new$/, createView, "New payment"],
  [/^#\/payments\/([0-9a-fA-F-]{36})$/, paymentView, "Payment"],
];
let leave = () => {};

function keyPrompt(message) {
  const input = h("input", { id: "merchant-key", type: "password", autocomplete: "off", spellcheck: "false" });
  const status = h("p", { class: "form-error", role: "alert", hidden: !message }, message);
  const button = h("button", {}, "Continue");
  const say = (text) => ((status.textContent = text), (status.hidden = false), (button.disabled = false));
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "key-title" },
    h("h1", { id: "key-title", tabindex: "-1" }, "Your merchant key"),
    h("p", {}, "The dashboard sends it to the API. It stays in this browser tab only, gone when the tab closes."),
    field("Merchant API key", input),
    status,
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!input.value.trim()) return say("Enter your key.");
    rememberKey(input.value.trim());
    button.disabled = true;
    try {
      // Any authenticated read proves the key; a 401 comes back here through "regis:unauthorized".
      await api("/api/payments?limit=1");
    } catch (error) {
      if (error.status === 401) return;
      if (!error.status) return forgetKey(), say(problemText(error));
    }
    render();
  });
  document.title = "Sign in · Regis Pay";
  clear(main, form);
  input.focus();
}

/** Draws the view of the current hash; without a key, the key prompt, which comes back to the same hash. */
function render(message) {
  leave();
  leave = () => {};
  const signedIn = Boolean(merchantKey());
  clear(
    nav,
    signedIn && [
      h("a", { href: "#/" }, "Payments"),
      h("a", { href: "#/new" }, "New payment"),
      h("button", { type: "button", class: "link", onclick: () => (forgetKey(), render("The key is forgotten: this tab no longer holds it.")) }, "Forget key"),
    ],
  );
  if (!signedIn) return keyPrompt(message);
  const [pattern, view, title] = routes.find(([pattern]) => pattern.test(location.hash)) ?? [];
  document.title = `${title ?? "Not found"} · Regis Pay`;
  clear(main);
  if (view) leave = view(main, ...pattern.exec(location.hash).slice(1)) ?? leave;
  else main.append(h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the payments")));
  main.querySelector("h1")?.focus({ preventScroll: true });
}

addEventListener("hashchange", () => render());
addEventListener("regis:unauthorized", () => render("The API refused this key (401). Enter a valid merchant key."));
render();
