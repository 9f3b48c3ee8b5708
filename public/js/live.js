// Live updates of one payment: a WebSocket opened with a short-lived ticket; while it is down, polling every second and reconnecting with a fresh ticket.
import { api, ApiError } from "./api.js";

const pollMs = 1000;
const maxReconnectMs = 30_000;
const helloTimeoutMs = 5000;

/**
 * Calls onMessage with each server message ({type:"hello", payment} then {type:"event", event, payment}),
 * poll() every second while the socket is not live, and onMode("connecting" | "live" | "polling").
 * Answers stop().
 */
export function watchPayment(id, { onMessage, poll, onMode }) {
  let stopped = false;
  let socket = null;
  let pollTimer = null;
  let reconnectTimer = null;
  let reconnectMs = 1000;

  function startPolling() {
    if (pollTimer || stopped) return;
    const tick = async () => {
      try {
        await poll();
      } catch {
        // A failed poll is retried on the next tick; a 401 has already sent the user to the key prompt.
      }
      if (pollTimer && !stopped) pollTimer = setTimeout(tick, pollMs);
    };
    pollTimer = setTimeout(tick, 0);
  }
  const stopPolling = () => (clearTimeout(pollTimer), (pollTimer = null));

  function fallBack() {
    if (stopped) return;
    onMode("polling");
    startPolling();
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, reconnectMs);
    reconnectMs = Math.min(reconnectMs * 2, maxReconnectMs);
  }

  async function connect() {
    if (stopped) return;
    let ticket;
    try {
      ({ ticket } = await api(`/api/payments/${id}/live-tickets`, { method: "POST" }));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return stop();
      return fallBack();
    }
    if (stopped) return;
    const ws = new WebSocket(`${location.origin.replace(/^http/, "ws")}/api/payments/${id}/live?ticket=${encodeURIComponent(ticket)}`);
    socket = ws;
    // A socket that opens but never greets (a proxy that swallows it) counts as down.
    const helloTimer = setTimeout(() => ws.close(4000, "no hello"), helloTimeoutMs);
    ws.addEventListener("message", (m) => {
      let message;
      try {
        message = JSON.parse(m.data);
      } catch {
        return;
      }
      if (message?.type === "hello") {
        clearTimeout(helloTimer);
        stopPolling();
        reconnectMs = 1000;
        onMode("live");
      }
      if (message?.type === "hello" || message?.type === "event") onMessage(message);
    });
    // "error" is always followed by "close".
    ws.addEventListener("close", () => {
      clearTimeout(helloTimer);
      if (socket !== ws) return;
      socket = null;
      fallBack();
    });
  }

  function stop() {
    stopped = true;
    stopPolling();
    clearTimeout(reconnectTimer);
    const ws = socket;
    socket = null;
    ws?.close(1000, "left the page");
  }

  onMode("connecting");
  connect();
  return stop;
}
