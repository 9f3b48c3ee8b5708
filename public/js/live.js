// Live updates of one payment: a WebSocket opened with a short-lived ticket; while it is down, polling every second and reconnecting with a fresh ticket.
import { api } from "./api.js";

const pollMs = 1000;
const helloTimeoutMs = 5000;
const maxReconnectMs = 30_000;
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/**
 * Hands each server message ({type: "hello", payment}, then {type: "event", event, payment}) to onMessage, calls poll()
 * every second while the socket is not live, and reports onMode("connecting" | "live" | "polling"). Answers stop().
 */
export function watchPayment(id, { onMessage, poll, onMode }) {
  let stopped = false;
  let socket = null;
  let polling = null;
  let reconnect;
  let reconnectMs = 1000;

  async function startPolling() {
    if (polling) return;
    const run = (polling = {});
    while (polling === run && !stopped) {
      // A failed poll is tried again next time; a 401 has already sent the user to the key prompt.
      await poll().catch(() => {});
      await sleep(pollMs);
    }
  }

  function fallBack() {
    if (stopped) return;
    onMode("polling");
    startPolling();
    clearTimeout(reconnect);
    reconnect = setTimeout(connect, reconnectMs);
    reconnectMs = Math.min(reconnectMs * 2, maxReconnectMs);
  }

  async function connect() {
    let ws;
    try {
      const { ticket } = await api(`/api/payments/${id}/live-tickets`, { method: "POST" });
      if (stopped) return;
      ws = socket = new WebSocket(`${location.origin.replace(/^http/, "ws")}/api/payments/${id}/live?ticket=${encodeURIComponent(ticket)}`);
    } catch (e) {
      return e.status === 401 ? stop() : fallBack();
    }
    // A socket that never greets (a proxy swallowing it) counts as down.
    const silent = setTimeout(() => ws.close(4000, "no hello"), helloTimeoutMs);
    ws.addEventListener("message", ({ data }) => {
      let message;
      try {
        message = JSON.parse(data);
      } catch {
        return;
      }
      if (message?.type === "hello") {
        clearTimeout(silent);
        polling = null;
        reconnectMs = 1000;
        onMode("live");
      }
      if (message?.type === "hello" || message?.type === "event") onMessage(message);
    });
    // "error" is always followed by "close".
    ws.addEventListener("close", () => {
      clearTimeout(silent);
      if (socket === ws) (socket = null), fallBack();
    });
  }

  function stop() {
    stopped = true;
    polling = null;
    clearTimeout(reconnect);
    const ws = socket;
    socket = null;
    ws?.close(1000, "left the page");
  }

  onMode("connecting");
  connect();
  return stop;
}
