// A payment's page: details, lifecycle stages with the time between them, every event (live), refunds, and the cancel and refund actions.
import { api, ApiError, formKey, problemText } from "./api.js";
import { watchPayment } from "./live.js";
import { clear, clearFieldErrors, decimal, dl, duration, field, h, minus, money, row, showFieldError, statusBadge, table, time } from "./ui.js";

const stages = [["Initiated", "initiatedAt"], ["Created", "createdAt"], ["Settled", "settledAt"], ["Completed", "completedAt"]];
const modes = { connecting: "Connecting…", live: "Live: events appear as they happen", polling: "Live connection down: checking every second" };
/** How soon a failed read of the events is tried again. */
const retryMs = 1000;
const since = (a, b) => Date.parse(b) - Date.parse(a);
const plus = (from, at) => from && at && h("span", { class: "delta" }, ` +${duration(since(from, at))}`);
const notice = (cls, title, ...text) => h("p", { class: `notice ${cls}` }, h("strong", {}, title), ...text);

function stageList(p) {
  let previous = null;
  const done = (cls, name, at) => {
    const item = h("li", { class: `stage ${cls}` }, h("span", { class: "stage-name" }, name), h("span", { class: "stage-when" }, time(at), plus(previous, at)));
    previous = at;
    return item;
  };
  const waiting = p.failure || p.cancellation ? "not reached" : "waiting…";
  const items = stages.map(([label, key]) => (p[key] ? done("done", `✓ ${label}`, p[key]) : h("li", { class: "stage" }, h("span", { class: "stage-name" }, label), h("span", { class: "stage-when" }, waiting))));
  if (p.failedAt) items.push(done("bad", "✕ Failed", p.failedAt));
  if (p.cancelledAt) items.push(done("bad", "⊘ Cancelled", p.cancelledAt));
  return h("ol", { class: "stages", "aria-label": "Lifecycle stages" }, items);
}

function notices(p) {
  return [
    p.failure && notice("bad", "Failed", ` at step ${p.failure.step}: ${p.failure.reason}`),
    p.cancellation && notice("", "Cancelled", p.cancellation.reason ? `: ${p.cancellation.reason}` : " (no reason given)"),
    p.stalled && notice("warn", "Stalled", ` at step ${p.stalled.step}: ${p.stalled.reason} (${p.stalled.attempts} attempts, since `, time(p.stalled.at), "). An operator can re-drive it."),
    p.refunds.map((r) => r.stalled && notice("warn", "Refund stalled", ` at step ${r.stalled.step}: ${r.stalled.reason}`)),
  ];
}

/** The events up to `upTo`: one that arrived ahead of a gap waits until the gap is read, so the timeline never skips one. */
function timeline(events, upTo) {
  let previous = null;
  const shown = [...events.values()].filter((e) => e.stream.version <= upTo);
  return shown.sort((a, b) => a.stream.version - b.stream.version).map((e) => {
    const { Timestamp: at, ...data } = e.eventData ?? {};
    const item = h(
      "li",
      { "data-event-type": e.eventType },
      h("div", { class: "event-head" }, h("span", { class: "version" }, `v${e.stream.version}`), h("strong", {}, e.eventType), at && time(at), plus(previous, at)),
      dl("event-data", Object.entries(data).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)])),
    );
    previous = at ?? previous;
    return item;
  });
}

const refundStatus = { succeeded: "✓ Succeeded", failed: "✕ Failed", pending: "… Pending" };
const refundColumns = ["Refund", "Amount", "Status", "Requested", "Completed", "Reason"];
const refundRow = (r) =>
  row({}, refundColumns, [
    h("span", { class: "mono" }, r.id),
    money(r.amount, r.currency),
    h("span", { class: `status refund-${r.status}` }, refundStatus[r.status] ?? r.status),
    time(r.requestedAt),
    r.completedAt ? time(r.completedAt) : "–",
    r.failureReason ?? "–",
  ]);

/**
 * A button opening a small form; field errors inline. One Idempotency-Key until the action succeeds, kept in the tab
 * while an attempt's outcome is unclear (see formKey): a retry, even retyped or after leaving the page, replays
 * instead of acting twice (the API refuses the key with another body, 422, and the next attempt is a new one).
 */
function action(id, label, control, scope, onSubmit) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit" }, label);
  const show = (open) => ((form.hidden = !open), (toggle.hidden = open), toggle.setAttribute("aria-expanded", String(open)), open ? control.focus() : toggle.focus());
  const form = h("form", { id, class: "panel", hidden: true, novalidate: true }, control.closest(".field"), error, h("div", { class: "actions" }, submit, h("button", { type: "button", class: "secondary", onclick: () => show(false) }, "Not now")));
  const toggle = h("button", { type: "button", "aria-expanded": "false", "aria-controls": id, onclick: () => show(true) }, `${label}…`);
  let key = formKey(scope);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    clearFieldErrors(form);
    error.hidden = true;
    submit.disabled = true;
    submit.textContent = "Sending…";
    try {
      await key.send(onSubmit);
      key = formKey(scope);
      show(false);
    } catch (err) {
      const fields = Object.entries(err.problem?.errors ?? {});
      if (!fields.length || !fields.every(([name, messages]) => showFieldError(form, `${id}-${name}`, messages))) ((error.textContent = problemText(err)), (error.hidden = false));
    }
    submit.disabled = false;
    submit.textContent = label;
  });
  return { box: h("div", {}, toggle, form), open: () => !form.hidden };
}

export function paymentView(main, id) {
  let payment = null;
  let stopped = false;
  const events = new Map();
  const head = h("div", { class: "title-row" }, h("h1", { tabindex: "-1" }, "Payment"));
  const live = h("p", { class: "live muted", role: "status" });
  const summary = h("div", {}, "Loading…");
  const notes = h("div");
  const stageSlot = h("div");
  const list = h("ol", { id: "timeline", class: "timeline" });
  const refundsBody = h("tbody");
  const refundsTable = table(refundColumns, refundsBody);
  const noRefunds = h("p", { class: "muted" }, "No refunds.");
  const section = (title, ...content) => h("section", {}, h("h2", {}, title), content);

  const reason = h("input", { id: "cancel-reason", maxlength: "500", autocomplete: "off" });
  field("Reason (optional)", reason);
  const cancel = action("cancel", "Cancel payment", reason, `cancel:${id}`, async (use) => {
    const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
    update(await api(`/api/payments/${id}/cancel`, { method: "POST", body, idempotencyKey: use() }));
  });
  const refundAmount = h("input", { id: "refund-amount", inputmode: "decimal", autocomplete: "off" });
  field("Amount to refund", refundAmount);
  const refund = action("refund", "Refund", refundAmount, `refund:${id}`, async (use) => {
    const text = refundAmount.value.trim();
    if (!decimal.test(text)) throw new ApiError(400, { errors: { amount: ["Enter a number, e.g. 10.00."] } });
    await api(`/api/payments/${id}/refunds`, { method: "POST", body: { amount: Number(text) }, idempotencyKey: use() });
    // The refund is accepted: a failed read of the payment after it must not look like a failed refund.
    poll().catch(() => {});
  });

  const actions = h("div", { class: "actions-row" }, cancel.box, refund.box);
  clear(main, h("p", {}, h("a", { href: "#/" }, "← Payments")), head, live, summary, notes, actions, section("Lifecycle", stageSlot), section("Events", list), section("Refunds", noRefunds, refundsTable));

  /** The last version held with none missing before it (live events can arrive ahead of a gap). */
  const held = () => {
    let v = 0;
    while (events.has(v + 1)) v++;
    return v;
  };

  function draw() {
    const p = payment;
    const end = p.completedAt ?? p.failedAt ?? p.cancelledAt;
    clear(head, h("h1", { tabindex: "-1" }, money(p.amount, p.currency)), statusBadge(p.status, Boolean(p.stalled)));
    clear(
      summary,
      dl("facts", [
        ["Payment", p.id],
        ["Provider reference", p.paymentReference ?? "–"],
        ["Refunded", money(p.refundedAmount, p.currency)],
        ["Version", p.version],
        end && ["Took", `${duration(since(p.initiatedAt, end))} from initiated to ${p.status}`],
        ...Object.entries(p.metadata ?? {}).map(([k, v]) => [`metadata.${k}`, v]),
      ]),
    );
    clear(notes, notices(p));
    clear(stageSlot, stageList(p));
    // One version of the payment on the page: the timeline stops where the resource is (events read ahead of it wait
    // for its next read, which fetchEvents makes at once) and before the first event missing.
    clear(list, timeline(events, Math.min(held(), p.version)));
    clear(refundsBody, p.refunds.map(refundRow));
    refundsTable.hidden = !p.refunds.length;
    noRefunds.hidden = p.refunds.length > 0;
    cancel.box.hidden = !(["initiated", "created"].includes(p.status) || cancel.open());
    refund.box.hidden = !(["settled", "completed"].includes(p.status) || refund.open());
    if (!refund.open()) refundAmount.value = String(Math.max(0, p.refunds.reduce((left, r) => (r.status === "failed" ? left : minus(left, r.amount, p.currency)), p.amount)));
  }

  let reading = Promise.resolve();
  /** Reads the events after those held; reads queue, so a later one finds what an earlier one left. */
  const fetchEvents = () =>
    (reading = reading.catch(() => {}).then(async () => {
      for (let from = held() + 1; from && !stopped; ) {
        const page = await api(`/api/payments/${id}/events?fromVersion=${from}&limit=100`);
        for (const e of page.events) events.set(e.stream.version, e);
        from = page.nextFromVersion;
      }
      if (!payment || stopped) return;
      draw();
      // Events read after the resource can be ahead of it (draw shows them only with it): it is read again at once (if
      // that read fails, they wait for the next one).
      if (held() > payment.version) await poll().catch(() => {});
    }));

  let retrying;
  /** Keeps the newest resource (answers can arrive out of order) and fetches the events it is ahead by, again a second later if that fails. */
  function update(p) {
    if (stopped) return;
    if (!payment || p.version >= payment.version) payment = p;
    draw();
    // One retry pending at most: polling calls update every second, and each failure would start another loop.
    if (payment.version > held())
      fetchEvents().catch(() => {
        if (retrying) return;
        retrying = setTimeout(() => ((retrying = undefined), update(payment)), retryMs);
      });
  }
  const poll = async () => update(await api(`/api/payments/${id}`));

  let stopLive = () => {};
  // The payment read decides the page; its events follow (update reads them, and again a second later if that fails).
  poll().then(
    () => {
      if (stopped) return;
      stopLive = watchPayment(id, {
        poll,
        onMode: (mode) => (live.textContent = modes[mode]),
        onMessage: (m) => {
          // Events already read over REST come again on the socket: the version is the key.
          if (m.event?.stream) events.set(m.event.stream.version, m.event);
          update(m.payment ?? payment);
        },
      });
    },
    (e) => {
      if (stopped || e.status === 401) return;
      clear(summary);
      clear(notes, h("p", { class: "notice bad", role: "alert" }, e.status === 404 ? "There is no such payment for this merchant." : `Could not load the payment. ${problemText(e)}`));
    },
  );
  return () => {
    stopped = true;
    clearTimeout(retrying);
    stopLive();
  };
}
