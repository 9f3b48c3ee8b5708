// Live updates of one payment: a WebSocket opened with a short-lived ticket; while it is down, polling every second and reconnecting with a fresh ticket.
import { api } from "./api.js";

// Timers; a test may shorten them before the page loads (globalThis.regisTimers).
const { pollMs, helloTimeoutMs, heartbeatMs, maxReconnectMs } = { pollMs: 1000, helloTimeoutMs: 5000, heartbeatMs: 25_000, maxReconnectMs: 30_000, ...globalThis.regisTimers };
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
    // A socket that never greets (a proxy swallowing it) counts as down; so does one that stops answering pings (a
    // half-open connection after sleep or a network change, which the browser may not notice for minutes).
    // Polling starts at once: a close of a half-open connection may wait for an answer that never comes.
    const abandon = (code, reason) => {
      if (socket === ws) (socket = null), fallBack();
      ws.close(code, reason);
    };
    let silent = setTimeout(() => abandon(4000, "no hello"), helloTimeoutMs);
    let beat;
    const heartbeat = () => {
      clearTimeout(beat);
      beat = setTimeout(() => {
        ws.send("ping");
        silent = setTimeout(() => abandon(4001, "no pong"), helloTimeoutMs);
      }, heartbeatMs);
    };
    ws.addEventListener("message", ({ data }) => {
      // Anything from the server shows the connection alive.
      clearTimeout(silent);
      if (socket === ws) heartbeat();
      let message;
      try {
        message = JSON.parse(data);
      } catch {
        return;
      }
      if (message?.type === "hello") {
        polling = null;
        reconnectMs = 1000;
        onMode("live");
      }
      if (message?.type === "hello" || message?.type === "event") onMessage(message);
    });
    // "error" is always followed by "close".
    ws.addEventListener("close", () => {
      clearTimeout(silent);
      clearTimeout(beat);
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
