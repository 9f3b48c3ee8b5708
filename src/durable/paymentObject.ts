// One Durable Object per payment: serialises its commands, keeps the aggregate in memory, appends through the
// event store, relays every committed event to the queue, and runs the payment's lifecycle steps.
//
// Relay protocol (at least once, never an uncommitted event):
//   1. before the append of a merchant's command, `pending_since` is written to SQLite and an alarm is set (durable
//      before the request leaves);
//   2. the append commits in Cosmos (the only source of truth for what happened);
//   3. committed events are sent to the queue before anything is written, then the copy keeps them, `relayed_version`
//      advances and `pending_since` clears: bookkeeping, written behind (see `bookkeeping`), whose loss only repeats
//      idempotent work.
// A crash or failure anywhere leaves the alarm, which reads what Cosmos committed beyond the object's copy and sends
// everything after `relayed_version`. Events are only ever published after being read back or confirmed committed.
// A lifecycle step's append needs no marker of its own (step 1): its trigger is delivered again until the step is
// confirmed (the queue retries a delivery the object failed; the watchdog alarm, set while a step is due, re-sends
// it), and the step's retry meets an outcome that committed meanwhile through the version check (a conflict reads the
// tail and relays it), or wins the version so that the lost append can never commit.
//
// The object's SQLite keeps a copy of the stream (`events`): only events known committed, always a prefix of what
// Cosmos holds. A cold object replays it and loads from Cosmos only what lies beyond it (one query, from the copy's
// last event, which also checks that Cosmos still holds it); redelivery and re-drive send from it.
import { DurableObject } from "cloudflare:workers";
import { EventStoreError, eventIdOf, readThrough, refused, type EventDocument } from "../core/eventStore.ts";
import { faultFires } from "../core/faults.ts";
import { uuidFrom } from "../core/ids.ts";
import { log } from "../core/log.ts";
import { encode, replay } from "../cosmos/codec.ts";
import { decide, type Command } from "../payment/decide.ts";
import { eventIdFor, streamIdOf, type PaymentEvent, type Recorded } from "../payment/events.ts";
import { appendsNothing, nextStep, refundSteps, stepFor, type StepToRun } from "../payment/lifecycle.ts";
import { toMajor, toMinor } from "../payment/money.ts";
import { paymentResource, paymentSummary, refundResource, type PaymentResource, type RefundResource } from "../payment/resource.ts";
import { evolve, initialState, type Payment, type State } from "../payment/state.ts";
import { notificationBody, provider } from "../provider/client.ts";
import { currentLagMs } from "../queue/health.ts";
import { batches, dueIn, eventMessage, type EventMessage } from "../queue/message.ts";
import { services, type Services } from "../wiring.ts";
import { failure, type Failure, type Reply, type StepOutcome } from "./replies.ts";

/** Named points of the command path where crash tests abort the object for real (`ctx.abort()`). */
export type CrashPoint = "before-append" | "after-append" | "after-send";
/** A crash point armed for the append (or send) that reaches a given version, e.g. "after-append@2". */
export type ArmedCrash = `${CrashPoint}@${number}`;

export type Caller = { merchantId: string; requestId: string };
export type CreateRequest = { paymentId: string; amountMinor: number; currency: string; metadata: Record<string, string> };
type Causation = { correlationId: string | null; causationId: string | null };
/** The new events are in the aggregate; `publish` relays and records them: a step awaits it, a command leaves it for after its reply (see `later`). */
type Executed = { ok: true; publish: () => Promise<void> } | Failure;

const schema = `
CREATE TABLE IF NOT EXISTS meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  payment_id TEXT NOT NULL,
  relayed_version INTEGER NOT NULL DEFAULT 0,
  pending_since INTEGER,
  progress_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, reply TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS steps (trigger_id TEXT PRIMARY KEY, attempts INTEGER NOT NULL DEFAULT 0, attempted_at INTEGER, last_error TEXT, done_at INTEGER);
CREATE TABLE IF NOT EXISTS notifications (trigger_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (version INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS events (version INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
`;

type Meta = { payment_id: string; relayed_version: number; pending_since: number | null; progress_at: number };
type MetaChange = Partial<Omit<Meta, "payment_id">>;

export class PaymentObject extends DurableObject<Env> {
  private readonly svc: Services;
  private state: State = initialState();
  private version = 0;
  /** Set once the stream is known (loaded, or created here): reads and non-create commands wait for it. */
  private loading: Promise<void> | null = null;
  private unrelayed: EventDocument[] = [];
  /** Notifications already sent that append no event (a refund's outcome, how a payment ended): read from storage once, then kept here. */
  private notified: Set<string> | null = null;
  /** The queue's lag as its consumer last observed it, read when an alarm fires (see ../queue/health.ts). */
  private queueLagMs = 0;
  private queueTail: Promise<unknown> = Promise.resolve();
  /** Work a command leaves for after its reply; the object's next operation waits for it (see `later`). */
  private readonly laterWork: (() => unknown)[] = [];
  /** Stored replies of keyed commands, written with the relay's bookkeeping (see `storeReplies`). */
  private readonly replies: (() => void)[] = [];
  /** The Idempotency-Key of the keyed command under way, claimed at its first append (see `idempotent`). */
  private claim: { key: string; fingerprint: string; written: boolean; kept: boolean } | null = null;
  /** The alarm as last set or asked: a time, null for none, undefined until known (see `ensureAlarm`). */
  private alarmAt: number | null | undefined;
  /** Pending while the lifecycle is in flight: keeps the object in memory between its steps (see WARM_HOLD_MS). */
  private warmHold: ReturnType<typeof setTimeout> | undefined;
  private warmUntil = 0;
  /** The meta row, read once and then written through (the object is its storage's only writer). */
  private metaRow: Meta | null | undefined;
  /**
   * The `counters` table (recovery rounds, last relay time), read once and then written through. A table of the
   * object's schema rather than the storage's key-value API, whose own table each new object would create at its first
   * relay (a schema change of its own). Objects of earlier releases kept these in the key-value API: they start them
   * again (a backoff from its first round, and one redelivery check that may come early).
   */
  private counterRows: Map<string, number> | null = null;
  /** Versions whose delivery the consumer confirmed, read once and then written through. */
  private deliveredRows: Set<number> | null = null;
  /**
   * The event ids of kept events whose delivery is not confirmed yet, so that a confirmation need not read its event
   * back from the copy (which it still does for a version missing here, e.g. after a restart).
   */
  private readonly unconfirmedIds = new Map<number, string>();
  /**
   * When each unconfirmed version was last sent (or is due, if sent with a delay). A version the object has not sent
   * since it started takes the stored `relayed-at` (the last relay's time) when first looked at, and keeps it.
   * Redelivery is due a while after a version's own send, so a payment that keeps relaying other events does not put
   * off the one that was lost, and a version still in flight is not sent again with it.
   */
  private readonly sentAt = new Map<number, number>();
  private schemaReady = false;
  /** Bookkeeping written behind (see `bookkeeping`), and the timer that writes it if nothing else does first. */
  private readonly behindWrites: (() => void)[] = [];
  private behindTimer: ReturnType<typeof setTimeout> | undefined;
  private deferring = false;
  /** Known to have no tables yet (see `isNew`). */
  private untouched: boolean | undefined;
  /** Test hook: abort the object when the command path reaches one of these points. */
  readonly crashPoints = new Set<ArmedCrash>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.svc = services(env);
  }

  /**
   * The object's tables, created at first use rather than in the constructor: there, the schema would commit on its
   * own, and a new payment's first command would wait for one more durable write before its append.
   */
  private get sql() {
    if (!this.schemaReady) {
      this.ctx.storage.sql.exec(schema);
      this.schemaReady = true;
    }
    if (this.behindWrites.length > 0) this.flushBehind(); // in order: before whatever reads or writes next
    return this.ctx.storage.sql;
  }

  /**
   * The relay's bookkeeping is written behind: with the object's next use of its tables, read or write (a command's
   * marker, a create step's attempt), once nothing is due (with the alarm's deletion), or after WRITE_BEHIND_MS, so that the
   * steps of a payment share one commit instead of one each. Losing it (a crash, an eviction) only repeats work that
   * is idempotent: events past the stored relayed_version are relayed again, deliveries not stored as confirmed are
   * sent again, a keyed retry finds its claim and is decided again. What guards a guarantee is never written behind.
   */
  private bookkeeping(write: () => void) {
    this.deferring = true;
    try {
      write();
    } finally {
      this.deferring = false;
    }
  }

  /** A write of the bookkeeping: behind when inside `bookkeeping`, else now. */
  private write(query: string, ...params: SqlStorageValue[]) {
    if (!this.deferring) return void this.sql.exec(query, ...params);
    this.behindWrites.push(() => this.ctx.storage.sql.exec(query, ...params));
    // Set before the write was queued, so it fires within WRITE_BEHIND_MS of it. A flush before it leaves it pending
    // (firing with nothing queued does nothing): clearing it and setting another at every step cost more than the step.
    this.behindTimer ??= setTimeout(() => {
      this.behindTimer = undefined;
      this.flushBehind();
    }, this.svc.config.WRITE_BEHIND_MS);
  }

  private flushBehind() {
    // One at a time, removed once run: a write that throws stays queued, with those after it, rather than being lost.
    while (this.behindWrites.length > 0) {
      this.behindWrites[0]!();
      this.behindWrites.shift();
    }
  }

  /**
   * An object that never held anything has no tables: reading a payment that does not exist (a 404, another merchant's
   * guess) must not create them, or every guessed id would leave a stored object behind.
   */
  private get isNew() {
    if (this.schemaReady) return false;
    if (this.untouched === undefined) {
      this.untouched = this.ctx.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'meta'").toArray().length === 0;
      // Its tables will be created empty, and it has no alarm (one is only ever set with its tables): nothing to read back.
      if (this.untouched) [this.metaRow, this.counterRows, this.deliveredRows, this.notified, this.alarmAt] = [null, new Map(), new Set(), new Set(), null];
    }
    return this.untouched;
  }

  // ---- RPC: the API's commands and reads ----

  async create(caller: Caller, req: CreateRequest, idempotencyKey: string | null): Promise<Reply<PaymentResource>> {
    const fingerprint = JSON.stringify([req.amountMinor, req.currency, Object.entries(req.metadata).sort()]);
    return this.serialize(() =>
      this.idempotent(`create:${idempotencyKey}`, idempotencyKey !== null, fingerprint, async () => {
        // A read of this id may be loading (unserialised): it settles first. One that found no such payment wrote
        // nothing, so the object is still brand-new.
        await this.loading?.catch(() => undefined);
        // A brand-new object appends at version 0 without reading: the append's version check proves the stream
        // new, and a conflict (it exists) re-syncs through the missing tail.
        if (this.meta() === null) {
          this.remember(req.paymentId);
          this.loading = Promise.resolve();
        } else {
          await this.ensureLoaded(req.paymentId);
          if (this.state.status !== "none" && this.ownerOf(this.state) !== caller.merchantId)
            return failure("idempotency_key_reused", "this idempotency key was used for another payment");
        }
        const executed = await this.execute(
          { type: "InitiatePayment", ...req, merchantId: caller.merchantId, at: now() },
          { correlationId: caller.requestId, causationId: caller.requestId },
        );
        if (!executed.ok) return executed;
        this.later(executed.publish);
        return { ok: true, status: 201, body: this.resource() };
      }),
    );
  }

  async get(caller: Caller, paymentId: string, at: { atVersion?: number; asOf?: string } = {}): Promise<Reply<PaymentResource>> {
    const owned = await this.owned(caller, paymentId);
    if (!owned.ok) return owned;
    if (at.atVersion === undefined && at.asOf === undefined) return { ok: true, status: 200, body: this.resource() };
    if (at.atVersion !== undefined && at.atVersion > this.version) return failure("version_not_found", `the payment has ${this.version} versions`);
    const docs = await readThrough(this.svc.store, streamIdOf(paymentId), 1, at.atVersion, at.atVersion ?? this.version);
    // The stream up to its first event not known to be at or before the time: clocks of several writers may disagree,
    // and skipping an event while keeping later ones would show a state the payment never had.
    const asOf = at.asOf === undefined ? null : instant(at.asOf);
    const after = asOf === null ? -1 : docs.findIndex((d) => !notAfter(instant(String(d.eventData.Timestamp)), asOf));
    const then = replay(after === -1 ? docs : docs.slice(0, after));
    if (then.state.status === "none") return failure("payment_not_found", `the payment did not exist at ${at.asOf}`);
    return { ok: true, status: 200, body: paymentResource(then.state, then.version) };
  }

  async history(caller: Caller, paymentId: string, fromVersion: number, limit: number): Promise<Reply<{ events: EventDocument[]; nextFromVersion: number | null }>> {
    const owned = await this.owned(caller, paymentId);
    if (!owned.ok) return owned;
    const docs = await readThrough(this.svc.store, streamIdOf(paymentId), fromVersion, limit + 1, Math.min(fromVersion + limit, this.version));
    const more = docs.length > limit;
    const events = docs.slice(0, limit);
    return { ok: true, status: 200, body: { events, nextFromVersion: more ? (events.at(-1)?.stream.version ?? 0) + 1 : null } };
  }

  async cancel(caller: Caller, paymentId: string, reason: string | null, idempotencyKey: string | null): Promise<Reply<PaymentResource>> {
    return this.serialize(() =>
      this.idempotent(`cancel:${caller.merchantId}:${idempotencyKey}`, idempotencyKey !== null, JSON.stringify([reason]), async () => {
        const owned = await this.owned(caller, paymentId);
        if (!owned.ok) return owned;
        const p = owned.payment;
        let providerReference: string | undefined;
        if (p.status === "created" && p.reference) {
          const cancelled = await this.cancelAtProvider(p.reference);
          if (cancelled) return cancelled;
        } else if (p.status === "initiated" && this.stepRow(p.trigger.eventId)?.attempted_at) {
          // A create attempt may have reached the provider (e.g. it timed out): find its payment with the same
          // idempotency key and cancel it too, so that no provider payment outlives a cancelled one.
          const replay = await provider.create(this.svc.provider, p.trigger.eventId, toMajor(p.amountMinor, p.currency), p.currency);
          if (!replay.ok && !replay.permanent) return this.providerFailure(replay.reason);
          if (replay.ok) {
            providerReference = replay.value.paymentId;
            const cancelled = await this.cancelAtProvider(providerReference);
            if (cancelled) return cancelled;
          }
        }
        const command: Command = { type: "CancelPayment", reason, at: now(), ...(providerReference ? { providerReference } : {}) };
        const executed = await this.execute(command, { correlationId: caller.requestId, causationId: caller.requestId });
        if (!executed.ok) return executed;
        this.later(executed.publish);
        return { ok: true, status: 200, body: this.resource() };
      }),
    );
  }

  /** A refund of `amount`, or (null) of all that is left to refund: the amount less the refunds requested and not failed. */
  async refund(caller: Caller, paymentId: string, amount: number | null, idempotencyKey: string | null): Promise<Reply<RefundResource>> {
    return this.serialize(() =>
      this.idempotent(`refund:${caller.merchantId}:${idempotencyKey}`, idempotencyKey !== null, JSON.stringify([amount]), async () => {
        const owned = await this.owned(caller, paymentId);
        if (!owned.ok) return owned;
        const p = owned.payment;
        const minor = amount === null ? { ok: true as const, minor: "rest" as const } : toMinor(amount, p.currency);
        if (!minor.ok)
          return failure("validation_failed", "the refund amount is invalid", { errors: { amount: [`at most ${p.currency}'s minor-unit decimals`] } });
        const refundId = idempotencyKey ? uuidFrom("refund", paymentId, idempotencyKey) : crypto.randomUUID();
        const executed = await this.execute(
          { type: "RequestRefund", refundId, amountMinor: minor.minor, at: now() },
          { correlationId: caller.requestId, causationId: caller.requestId },
        );
        if (!executed.ok) return executed;
        this.later(executed.publish);
        const payment = this.state as Payment;
        return { ok: true, status: 202, body: refundResource(payment, payment.refunds.find((r) => r.id === refundId)!) };
      }),
    );
  }

  async refunds(caller: Caller, paymentId: string): Promise<Reply<RefundResource[]>> {
    const owned = await this.owned(caller, paymentId);
    if (!owned.ok) return owned;
    return { ok: true, status: 200, body: owned.payment.refunds.map((r) => refundResource(owned.payment, r)) };
  }

  // ---- RPC: the queue consumer and operators ----

  /** Runs the step that the delivered event triggers, if it is still due; anything else is acknowledged without effect. */
  async onEvent(message: EventMessage): Promise<StepOutcome> {
    return this.serializeStep(async () => {
      // An append whose outcome is unknown may have committed (e.g. a cancel): the tail is read before a step acts.
      const behind = await this.receive(message, this.meta()?.pending_since != null);
      if (behind) return behind;
      const step = stepFor(this.state, message.eventId);
      // An append of unknown outcome that Cosmos does not show yet may still commit (a request in flight) and change
      // what is due (a cancel): the step waits until it settles, known committed or too old to commit.
      const unsettledMs = this.unsettledMs();
      const outcome: StepOutcome =
        !step || this.isDone(step)
          ? { outcome: "ignored" }
          : unsettledMs > 0
            ? { outcome: "later", reason: "an earlier append's outcome is not known yet", afterMs: unsettledMs }
            : !(await this.settledByNow())
              ? { outcome: "retry", reason: lagReason }
              : await this.runStep(step, { correlationId: message.correlationId, causationId: message.eventId });
      // Confirmed after the step, not before: a write before its provider call would hold the call until durable. A
      // crash in between leaves the delivery unconfirmed: the queue retries the message (the call to the object
      // failed), or the object re-sends the event later, and it finds its step done. A step that will run again (a
      // retry, or a copy held for later) is not confirmed: if that message is lost, the object sends the event again.
      if (outcome.outcome === "done" || outcome.outcome === "ignored") this.delivered(message);
      await this.scheduleAlarm();
      return outcome;
    });
  }

  /** The queue gave up on a message (dead letter): the step it triggers is marked stalled until re-driven. */
  async onExhausted(message: EventMessage): Promise<StepOutcome> {
    return this.serializeStep(async () => {
      // As for a delivery: an append of unknown outcome may have recorded the step's outcome (the very failure that
      // exhausted the retries), so the tail is read first, and while such an append could still land, it waits.
      const behind = await this.receive(message, this.meta()?.pending_since != null);
      if (behind) return behind;
      if (!(await this.settledByNow())) return { outcome: "retry", reason: this.unsettledMs() > 0 ? "an earlier append's outcome is not known yet" : lagReason };
      this.delivered(message);
      const step = stepFor(this.state, message.eventId);
      if (!step || this.isDone(step)) return { outcome: "ignored" };
      const row = this.stepRow(step.trigger.eventId);
      const reason = row?.last_error ?? "retries exhausted";
      const attempts = row?.attempts ?? 0;
      const refundId = "refund" in step ? step.refund.id : undefined;
      const executed = await this.execute(
        { type: "StallStep", step: step.kind, reason, attempts, at: now(), ...(refundId ? { refundId } : {}) },
        { correlationId: message.correlationId, causationId: message.eventId },
      );
      if (!executed.ok) return { outcome: "retry", reason: executed.message };
      await executed.publish();
      log("warn", "step stalled", { paymentId: this.paymentId(), step: step.kind, eventId: message.eventId, reason, attempts });
      return { outcome: "done" };
    });
  }

  /**
   * Takes a delivered event: loads the stream, and reads the tail when the event is newer than the object's state (or
   * `readTail`); the caller confirms the delivery. It was relayed, so it committed: a read that does not show it yet (a
   * lagging replica) is answered "retry", never taken as done.
   */
  private async receive(message: EventMessage, readTail: boolean): Promise<StepOutcome | null> {
    const paymentId = message.streamId.slice("pay:".length);
    await this.ensureLoaded(paymentId);
    this.remember(paymentId); // its event was relayed: the payment exists, even if a lagging read does not show it yet
    if (message.version > this.version || readTail) await this.syncTail();
    if (message.version > this.version) return { outcome: "retry", reason: `version ${message.version} is not readable yet` };
    return null;
  }

  /** Re-publishes the trigger of every due step, stalled ones included, due in `delaySeconds`. Answers how many were re-driven. */
  async redrive(paymentId: string, delaySeconds = 0): Promise<Reply<{ redriven: number }>> {
    return this.serialize(async () => {
      await this.ensureLoaded(paymentId);
      if (this.state.status === "none") return failure("payment_not_found", "no such payment");
      const redriven = await this.redriveDue(true, delaySeconds);
      if (redriven > 0) this.holdWarm(true); // its re-published triggers are on their way
      return { ok: true, status: 202, body: { redriven } };
    });
  }

  /** The live WebSocket (the Worker checked the ticket): accepted with the hibernation API, so idle sockets cost nothing (unless the warm hold keeps the object awake). */
  override async fetch(request: Request): Promise<Response> {
    const caller = { merchantId: request.headers.get("x-merchant-id") ?? "", requestId: "live" };
    const owned = await this.owned(caller, request.headers.get("x-payment-id") ?? "");
    if (!owned.ok) return new Response(null, { status: 404 });
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ closesAt: Date.now() + this.svc.config.LIVE_SOCKET_MAX_SECONDS * 1000 });
    server.send(JSON.stringify({ type: "hello", payment: this.resource() }));
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer) {
    const attachment = ws.deserializeAttachment() as { closesAt: number; pingedAt?: number };
    const now = Date.now();
    if (message !== "ping" || now - (attachment.pingedAt ?? 0) < this.svc.config.LIVE_PING_MIN_MS)
      return closeSocket(ws, 1008, `only "ping", at most once in ${this.svc.config.LIVE_PING_MIN_MS} ms`);
    if (!this.open(ws)) return;
    ws.serializeAttachment({ ...attachment, pingedAt: now });
    ws.send("pong");
  }

  /** Whether the socket is within its life (LIVE_SOCKET_MAX_SECONDS); one past it is closed. */
  private open(ws: WebSocket) {
    const { closesAt } = (ws.deserializeAttachment() ?? { closesAt: 0 }) as { closesAt: number };
    if (Date.now() < closesAt) return true;
    closeSocket(ws, 4001, "ticket expired: reconnect with a fresh one");
    return false;
  }

  override async webSocketClose(ws: WebSocket, code: number) {
    // 1005/1006 report a close without a status; they cannot be sent back.
    closeSocket(ws, code === 1005 || code === 1006 ? 1000 : code, "closing");
  }

  /** Where the relay stands: versions committed, sent to the queue, and confirmed delivered by the consumer. */
  async relayStatus(paymentId: string): Promise<Reply<{ version: number; relayedVersion: number; undelivered: number[] }>> {
    return this.serialize(async () => {
      await this.ensureLoaded(paymentId);
      if (this.state.status === "none") return failure("payment_not_found", "no such payment");
      return { ok: true, status: 200, body: { version: this.version, relayedVersion: this.meta()?.relayed_version ?? 0, undelivered: this.undelivered() } };
    });
  }

  override async alarm() {
    this.alarmAt = null; // the alarm that fired is gone; the check, or its failure, sets the next one
    await this.serialize(async () => {
      const meta = this.meta();
      if (!meta) return;
      try {
        await this.check(meta);
        this.clearCounter("alarm-round");
      } catch (e) {
        // The object retries its own checks (Cosmos or the queue unavailable, ...): the platform stops retrying a
        // throwing alarm after a few attempts, and the payment's unrelayed events would wait for its next request.
        const at = Date.now() + this.backedOff("alarm", this.svc.config.RELAY_CHECK_MS);
        log(e instanceof EventStoreError ? "warn" : "error", "alarm check failed; retrying", { paymentId: meta.payment_id, error: String(e), retryAt: new Date(at).toISOString() });
        this.backOff("alarm");
        await this.ctx.storage.setAlarm(at);
        this.alarmAt = at;
      }
    });
  }

  /** The alarm's work: what Cosmos committed is relayed, unconfirmed deliveries are re-sent, stuck steps re-driven. */
  private async check(meta: Meta) {
    // A load reads Cosmos beyond the copy; an object already loaded does so if an append's outcome is unknown.
    const loaded = this.loading !== null;
    await this.ensureLoaded(meta.payment_id);
    this.updateMeta(await this.relay()); // what is known committed goes out even if Cosmos fails the read below
    if (loaded && meta.pending_since !== null) await this.syncTail();
    await this.settledByNow();
    this.queueLagMs = await currentLagMs(this.env.READ_MODEL, this.svc.config.QUEUE_LAG_TTL_MS);
    await this.redeliverOverdue();
    const progressAt = this.meta()?.progress_at ?? Date.now();
    if (Date.now() - progressAt >= this.backedOff("watchdog", this.svc.config.WATCHDOG_MS)) {
      const redriven = await this.redriveDue(false);
      if (redriven > 0) log("warn", "watchdog re-drove a payment", { paymentId: meta.payment_id, redriven, version: this.version, idleMs: Date.now() - progressAt });
      this.updateMeta({ progress_at: Date.now() });
      this.backOff("watchdog");
    }
    // The object's own recovery rounds never extend its warm hold: a payment stuck on a lost delivery would stay
    // in memory (billed) for good. Only commands and deliveries do.
    await this.scheduleAlarm({ activity: false });
  }

  // ---- the command path ----

  /**
   * Decides, appends and relays; on a version conflict reads only the missing tail and decides again. `marked`: the
   * append is preceded by the durable pending marker and alarm (see the relay protocol above); a lifecycle step's
   * outcome is not (its trigger is delivered again until the step is confirmed).
   */
  private async execute(command: Command, causation: Causation, { marked } = { marked: true }): Promise<Executed> {
    const streamId = streamIdOf(this.paymentId());
    for (let attempt = 0; ; attempt++) {
      const decision = decide(command, this.state);
      if (!decision.ok) return failure(decision.rejection.code, decision.rejection.message);
      if (decision.events.length === 0) return { ok: true, publish: async () => {} };
      const docs = decision.events.map((e, i) => encode(streamId, this.version + i + 1, e, { eventId: eventIdFor(e), ...causation }));
      const earlier = this.meta()!.pending_since;
      if (this.claim && !this.claim.written)
        this.claim.written = this.sql.exec("INSERT OR IGNORE INTO idempotency VALUES (?, ?, '', ?)", this.claim.key, this.claim.fingerprint, Date.now()).rowsWritten > 0;
      if (marked) {
        this.setPending(Date.now());
        await this.ensureAlarm(Date.now() + this.svc.config.RELAY_CHECK_MS);
      }
      await this.crash("before-append", docs.at(-1)!.stream.version);
      let result;
      try {
        result = await this.svc.store.append(streamId, this.version, docs);
      } catch (e) {
        // Refused (throttled, or a 4xx): it did not commit. Otherwise the outcome is unknown: the alarm finds out from
        // Cosmos, the next command re-syncs through the conflict path, and deliveries wait for it to settle; the
        // window in which it could still land starts now (the client may have waited out throttling before it).
        this.setPending(refused(e) ? earlier : Date.now());
        // The alarm checks it (a step's append was not marked, so its alarm may be set only now).
        if (!refused(e)) await this.ensureAlarm(Date.now() + this.svc.config.RELAY_CHECK_MS);
        if (this.claim && !refused(e)) this.claim.kept = true; // it may yet commit: the key stays claimed
        log("error", "append failed", { paymentId: this.paymentId(), version: this.version, error: String(e) });
        // Cosmos's own hint when it throttled (after the client's waits), else a second.
        const retryAfterMs = e instanceof EventStoreError ? (e.retryAfterMs ?? 1000) : 1000;
        return failure("store_unavailable", "the event store is unavailable; retry with the same Idempotency-Key", { retryAfterSeconds: retryAfterMs / 1000 });
      }
      if (result.ok && this.claim) this.claim.kept = true; // committed: whatever follows, the key stays claimed
      if (result.ok && result.duplicate) {
        // Events with these ids are stored already: an earlier attempt of this very command whose answer was lost (a
        // payment's initiation and a refund's request take ids derived from what they start, see `eventIdFor`). What
        // Cosmos stored, not these documents (another time, another request id), is the truth: read as on a conflict.
        log("warn", "append found already committed", { paymentId: this.paymentId(), version: this.version });
        result = { ok: false, currentVersion: result.version };
      }
      await this.crash("after-append", docs.at(-1)!.stream.version);
      if (result.ok) {
        this.applied(docs, decision.events);
        const publish = async () => {
          await this.published(docs, { pending_since: null });
          await this.scheduleAlarm();
        };
        return { ok: true, publish };
      }
      // Not committed, and Cosmos is ahead: the marker stays until the tail is read (which settles any append of
      // unknown outcome made at this version), so a failed read here cannot hide what Cosmos holds.
      log("warn", "append conflict", { paymentId: this.paymentId(), expected: this.version, current: result.currentVersion, attempt });
      if (attempt >= this.svc.config.CONFLICT_RETRIES) return failure("version_conflict", "the payment changed concurrently; retry the request");
      // Cosmos behind the object means its container was restored under it: Cosmos is the truth, so load it again
      // (which drops the copy Cosmos no longer holds), as a cold start would.
      if (result.currentVersion < this.version) await this.reload();
      else await this.syncTail(result.currentVersion);
    }
  }

  /** One operation at a time; the next one also waits for the work the previous one left for after its reply. */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queueTail.then(fn);
    this.queueTail = run.catch(() => undefined).then(() => this.runLater());
    return run;
  }

  /**
   * A command answers once Cosmos holds its events, the truth its reply reports; the relay and the object's own
   * bookkeeping follow before the object's next operation (the bookkeeping is queued then, and written behind: see
   * `bookkeeping`). Waiting for them would hold the reply for the queue send and a durable write (the output gate). A
   * crash before the bookkeeping is written loses nothing: the pending marker is still set, and the alarm relays what
   * Cosmos committed; a keyed retry finds the key's claim instead of its reply (see `idempotent`).
   */
  private later(work: () => unknown) {
    this.laterWork.push(work);
  }

  /** Called by `serialize` only, after each operation: so `later` belongs inside a serialised operation. */
  private async runLater() {
    if (this.laterWork.length === 0) return;
    // First a macrotask: the reply leaves before a write of this work could hold it at the output gate.
    await new Promise((resolve) => setTimeout(resolve, 0));
    for (let work = this.laterWork.shift(); work; work = this.laterWork.shift()) {
      try {
        await work();
      } catch (e) {
        // The relay's failures leave the pending marker for the alarm; the stored first reply is only lost.
        log("error", "work after a reply failed", { paymentId: this.paymentId(), error: String(e) });
      }
    }
  }

  /** A delivery's work, serialised; a Cosmos failure is answered as a retry (the queue backs off), not thrown. */
  private serializeStep(fn: () => Promise<StepOutcome>): Promise<StepOutcome> {
    return this.serialize(async () => {
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof EventStoreError)) throw e;
        return { outcome: "retry", reason: e.message };
      }
    });
  }

  /**
   * Replays a keyed command's stored reply. Keys are a merchant's: cancel and refund keys carry the merchant's id (a
   * create's payment id is derived from it), so another merchant never finds the record. A command that reaches its
   * append first claims the key (its fingerprint, no reply yet) in the marker's write; the reply replaces the claim
   * with the relay's bookkeeping (see `later`). A retry that finds only a claim (a crash in between, or an append of
   * unknown outcome) is refused if its request differs, else decided again (the decider treats a repeat as such).
   */
  private async idempotent<T>(key: string, keyed: boolean, fingerprint: string, run: () => Promise<Reply<T>>): Promise<Reply<T>> {
    if (!keyed) return run();
    // The record is read with the stream loaded: a load is what finds a container restored under the object, which
    // turns the replies it recorded back into claims (see `load`).
    const meta = this.isNew ? null : this.meta();
    if (meta) await this.ensureLoaded(meta.payment_id);
    const row = this.isNew ? undefined : this.sql.exec<{ fingerprint: string; reply: string }>("SELECT fingerprint, reply FROM idempotency WHERE key = ?", key).toArray()[0];
    if (row && row.fingerprint !== fingerprint) return failure("idempotency_key_reused", "this Idempotency-Key was used with a different request");
    if (row && row.reply !== "") return { ...(JSON.parse(row.reply) as Extract<Reply<T>, { ok: true }>), replayed: true };
    const claim = (this.claim = { key, fingerprint, written: false, kept: false });
    // Nothing committed (refused, rejected on a retry after a conflict, or failed before any append could land, e.g. a
    // tail read after a conflict): the key is free again.
    const release = () => claim.written && !claim.kept && this.sql.exec("DELETE FROM idempotency WHERE key = ? AND reply = ''", key);
    let reply: Reply<T>;
    try {
      reply = await run();
    } catch (e) {
      release();
      throw e;
    } finally {
      this.claim = null;
    }
    // A success is kept for the key's replays if the key holds a claim: the command appended (or a retry of one that
    // did). A repeat that changed nothing (a cancel of a cancelled payment) keeps nothing, so that fresh keys cannot
    // grow the object's storage: a retry is decided again, to the same answer.
    if (reply.ok && (row || claim.written)) {
      // Written with the relay's bookkeeping (see `published`), or on its own after it when nothing was appended (a
      // retry that found its claim, and the command already done).
      this.replies.push(() => this.write("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)", key, fingerprint, JSON.stringify(reply), Date.now()));
      this.later(() => this.storeReplies());
    } else if (!reply.ok) release();
    return reply;
  }

  // ---- lifecycle steps ----

  private async runStep(step: StepToRun, causation: Causation): Promise<StepOutcome> {
    const p = this.state as Payment;
    const s = this.svc.provider;
    const key = step.trigger.eventId;
    // Only a create attempt is recorded before it runs: a cancel must know one may have reached the provider.
    if (step.kind === "create") this.sql.exec("INSERT INTO steps (trigger_id, attempted_at) VALUES (?, ?) ON CONFLICT (trigger_id) DO UPDATE SET attempted_at = excluded.attempted_at", key, Date.now());
    const at = now();
    let result;
    let onOk: (value: never) => Command | null;
    let onRefused: (reason: string) => Command | null = () => null;
    const stall = "refund" in step ? step.refund.stalled : p.stalled;
    switch (step.kind) {
      case "create":
        result = await provider.create(s, key, toMajor(p.amountMinor, p.currency), p.currency);
        onOk = (v: { paymentId: string }) => ({ type: "RecordProviderPayment", reference: v.paymentId, at });
        onRefused = (reason) => ({ type: "FailPayment", step: "create", reason, at });
        break;
      case "settle":
        result = await provider.settle(s, key, step.reference);
        onOk = () => ({ type: "RecordSettlement", reference: step.reference, at });
        // The provider cancelled it: a cancel reached the provider but its event did not commit (refused, or the
        // object reset in between). The payment is cancelled, as the provider says, not failed.
        onRefused = (reason) =>
          reason === "payment_cancelled" ? { type: "CancelPayment", reason: "cancelled at the provider", at } : { type: "FailPayment", step: "settle", reason, at };
        break;
      case "notify":
        result = await provider.notify(s, key, this.notification(step), nowSeconds());
        onOk = () => ({ type: "CompletePayment", at });
        break;
      case "refund":
        result = await provider.refund(s, key, p.reference ?? "", toMajor(step.refund.amountMinor, p.currency));
        onOk = (v: { refundId: string }) => ({ type: "RecordRefundSucceeded", refundId: step.refund.id, providerRefundId: v.refundId, at });
        onRefused = (reason) => ({ type: "RecordRefundFailed", refundId: step.refund.id, reason, at });
        break;
      case "notify-outcome":
      case "notify-refund": {
        result = await provider.notify(s, key, this.notification(step), nowSeconds());
        // It appends nothing, unless it had stalled: then that stall is over.
        const refundId = "refund" in step ? { refundId: step.refund.id } : {};
        onOk = () => (stall?.step === step.kind ? { type: "RecoverStep", step: step.kind, ...refundId, at } : null);
        break;
      }
    }
    const fields = { paymentId: p.id, step: step.kind, eventId: key, correlationId: causation.correlationId };
    // A refused notification never fails a settled payment: like a transient failure it retries, then stalls.
    const command = result.ok ? onOk(result.value as never) : result.permanent ? onRefused(result.reason) : null;
    if (!result.ok && !command) {
      // Failed attempts are counted, with the last reason, for the stall that exhausted retries record.
      this.sql.exec(
        "INSERT INTO steps (trigger_id, attempts, last_error) VALUES (?, 1, ?) ON CONFLICT (trigger_id) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error",
        key,
        result.reason,
      );
      log("warn", "step failed", { ...fields, reason: result.reason, permanent: result.permanent });
      return { outcome: "retry", reason: result.reason };
    }
    if (command) {
      // Unmarked, as its trigger is delivered again until confirmed; a stalled step's is not (its stall confirmed it,
      // and the watchdog skips stalled steps), so a re-driven one keeps the marker and its alarm.
      const executed = await this.execute(command, causation, { marked: stall !== null });
      if (!executed.ok) {
        log("warn", "step outcome not recorded", { ...fields, code: executed.code });
        return { outcome: "retry", reason: executed.message };
      }
      await executed.publish();
    }
    if (appendsNothing(step)) {
      this.sql.exec("INSERT INTO steps (trigger_id, done_at) VALUES (?, ?) ON CONFLICT (trigger_id) DO UPDATE SET done_at = excluded.done_at", key, Date.now());
      this.notified?.add(key);
    }
    log("info", result.ok ? "step done" : "step refused", { ...fields, ...(result.ok ? {} : { reason: result.reason }) });
    return { outcome: "done" };
  }

  /**
   * The body of the notification a step sends: the payment or refund as of the event that triggers it, dated by that
   * event. A function of the stream alone, so every attempt sends the same body without keeping it.
   */
  private notification(step: Extract<StepToRun, { kind: "notify" | "notify-outcome" | "notify-refund" }>) {
    const { eventId, version } = step.trigger;
    // Objects of earlier releases kept the body of a notification they had begun sending: their retries send that one.
    // (A new object has none: it is not asked, which would also write the bookkeeping behind now.)
    const kept = this.untouched ? undefined : this.sql.exec<{ body: string }>("SELECT body FROM notifications WHERE trigger_id = ?", eventId).toArray()[0];
    if (kept) return kept.body;
    if (step.kind === "notify-refund") {
      // After its outcome a refund changes only in whether its notification stalled, which as of the outcome it had not.
      const p = this.state as Payment;
      const refund = { ...step.refund, stalled: null };
      const type = refund.status === "succeeded" ? "refund.succeeded" : "refund.failed";
      return notificationBody({ paymentId: p.id, eventId, type, data: refundResource(p, refund), createdAt: refund.completedAt! });
    }
    // A settlement is early in its stream: when the payment has moved on since, replaying up to it reads a few events.
    const then = (version === this.version ? this.state : replay(this.kept(1, version)).state) as Payment;
    const [type, createdAt] =
      step.kind === "notify" ? ["payment.settled", then.times.settledAt] : then.status === "failed" ? ["payment.failed", then.times.failedAt] : ["payment.cancelled", then.times.cancelledAt];
    return notificationBody({ paymentId: then.id, eventId, type, data: paymentResource(then, version), createdAt: createdAt! });
  }

  /** Answers a failure when the provider does not cancel its payment, or null once it is cancelled. */
  private async cancelAtProvider(reference: string): Promise<Failure | null> {
    const result = await provider.cancel(this.svc.provider, uuidFrom("cancel", this.paymentId()), reference);
    if (result.ok) return null;
    // Settled at the provider, not here: its settle step's outcome was never recorded (it is retrying, or it stalled).
    // The step runs again now, and under its own key the provider replays the settlement, which it then records.
    if (result.reason === "payment_settled" && (await this.redriveDue(true)) > 0) this.holdWarm(true);
    return this.providerFailure(result.reason, result.permanent);
  }

  /** The provider's own words (its codes, our credentials failing, a network error) are logged, never told the merchant. */
  private providerFailure(reason: string, permanent = false): Failure {
    log("warn", permanent ? "the provider refused to cancel" : "the provider is unavailable", { paymentId: this.paymentId(), reason });
    return permanent
      ? failure("payment_not_cancellable", reason === "payment_settled" ? "the payment is settled; refund it instead" : "the payment provider refused to cancel the payment")
      : failure("provider_unavailable", "the payment provider is unavailable; retry later", { retryAfterSeconds: 1 });
  }

  /** Notifications of a refund's outcome, or of how a payment ended, append nothing: whether they were delivered is kept here. */
  private isDone(step: StepToRun) {
    if (!appendsNothing(step)) return false;
    this.notified ??= new Set(this.sql.exec<{ trigger_id: string }>("SELECT trigger_id FROM steps WHERE done_at IS NOT NULL").toArray().map((r) => r.trigger_id));
    return this.notified.has(step.trigger.eventId);
  }

  private dueSteps(includeStalled: boolean): StepToRun[] {
    if (this.state.status === "none") return [];
    const p = this.state;
    const next = nextStep(p);
    const all = [...(next && (includeStalled || !p.stalled) ? [next] : []), ...refundSteps(p)];
    return all.filter((s) => !this.isDone(s) && (includeStalled || !("refund" in s) || !s.refund.stalled));
  }

  private async redriveDue(includeStalled: boolean, delaySeconds = 0) {
    const due = this.dueSteps(includeStalled);
    if (due.length === 0) return 0;
    await this.send(due.flatMap((s) => this.kept(s.trigger.version, s.trigger.version)), delaySeconds);
    return due.length;
  }

  // ---- the stream in memory, and the relay ----

  private async ensureLoaded(paymentId: string) {
    this.loading ??= this.load(paymentId).catch((e) => {
      this.loading = null;
      throw e;
    });
    await this.loading;
  }

  private async reload() {
    this.loading = null;
    await this.ensureLoaded(this.paymentId());
  }

  /**
   * Loads the stream once: the object's copy, then what Cosmos holds beyond it (all of it, the first time). The read
   * starts at the copy's last event, so the same query proves Cosmos still holds it. A read that does not show it may
   * come from a replica behind the latest commit: the stream's version as appends see it decides. At or past the copy,
   * the copy stands (what lies beyond it is read later: a delivery, a conflict); behind it (a container restored or
   * re-created under the object), Cosmos is the truth and the copy and the relay's bookkeeping beyond it are dropped.
   * A different event at the copy's last version is another history, which no lagging replica shows: dropped too.
   */
  private async load(paymentId: string) {
    const streamId = streamIdOf(paymentId);
    const isNew = this.isNew;
    let copy = isNew ? [] : this.kept(1);
    const last = copy.at(-1);
    let tail = await this.svc.store.loadFrom(streamId, last?.stream.version ?? 1);
    if (isNew && tail.length === 0) {
      // No such payment: nothing is written, and nothing is held (a create, or a later read, starts afresh).
      this.loading = null;
      return;
    }
    this.remember(paymentId);
    const holdsCopy = !last || (tail[0] !== undefined && eventIdOf(tail[0]) === eventIdOf(last));
    const lagging = !holdsCopy && tail.length === 0 && (await this.svc.store.version(streamId)) >= last!.stream.version;
    if (lagging) log("warn", "Cosmos's read does not show the object's copy yet (a replica behind): the copy stands", { paymentId, copyVersion: last!.stream.version });
    else if (holdsCopy) {
      if (last) tail = tail.slice(1);
      if (tail.length > 0) this.settled();
    } else {
      tail = await this.svc.store.loadFrom(streamId, 1);
      const version = tail.at(-1)?.stream.version ?? 0;
      log("error", "the object's copy of the stream is not what Cosmos holds: copy dropped, stream reloaded", { paymentId, copyVersion: last!.stream.version, cosmosVersion: version });
      copy = [];
      this.sql.exec("DELETE FROM events");
      this.sql.exec("DELETE FROM deliveries WHERE version > ?", version);
      // Stored replies may name what Cosmos lost (a refund, the payment itself): each becomes a claim again, so that a
      // retry is decided against what Cosmos holds. Ids derived from the key find a command it still holds as a repeat,
      // and one it lost reaches the provider under the key it had (see `eventIdFor`).
      this.sql.exec("UPDATE idempotency SET reply = '' WHERE reply <> ''");
      this.deliveredRows = null;
      this.unconfirmedIds.clear();
      this.sentAt.clear();
      this.updateMeta({ relayed_version: Math.min(this.meta()!.relayed_version, version) });
    }
    this.keep(tail);
    this.state = initialState();
    this.version = 0;
    // Only events new to the object are progress: replaying its own copy must not reset the watchdog's clock.
    this.fold(copy);
    this.fold(tail);
    if (tail.length > 0) this.progressed();
    const relayed = this.meta()?.relayed_version ?? 0;
    this.unrelayed = [...copy, ...tail].filter((d) => d.stream.version > relayed);
    this.lastSends(); // dated before a relay here moves the last relay's time
    this.updateMeta(await this.relay());
  }

  /** The object's copy of the committed stream, versions `from` to `to`. */
  private kept(from: number, to = Number.MAX_SAFE_INTEGER): EventDocument[] {
    return this.sql
      .exec<{ doc: string }>("SELECT doc FROM events WHERE version BETWEEN ? AND ? ORDER BY version", from, to)
      .toArray()
      .map((r) => JSON.parse(r.doc) as EventDocument);
  }

  private keep(docs: EventDocument[]) {
    for (const d of docs) {
      this.write("INSERT OR REPLACE INTO events VALUES (?, ?)", d.stream.version, JSON.stringify(d));
      this.unconfirmedIds.set(d.stream.version, eventIdOf(d));
    }
  }

  /**
   * Reads only the events committed behind our back (after a conflict, or an append of unknown outcome); after a
   * conflict, through the version Cosmos reported (see `readThrough`).
   */
  private async syncTail(through = 0) {
    const tail = await readThrough(this.svc.store, streamIdOf(this.paymentId()), this.version + 1, undefined, through);
    if (tail.length === 0) return;
    await this.committed(tail);
    this.settled();
  }

  /**
   * The stream moved past the version that every append of unknown outcome expected (each was made at the object's
   * version, which only a known commit advances): each one is now either in the tail or can never commit.
   */
  private settled() {
    if (this.meta()?.pending_since != null) this.setPending(null);
  }

  /**
   * Whether no append of unknown outcome is pending any more, settling one that is too old to land (RELAY_SETTLE_MS)
   * once the stream's version as appends see it is still the object's: a read from a replica behind the latest commit
   * may not show one that landed (a cancel, which a step must not run past); a stream ahead is read again later.
   */
  private async settledByNow() {
    if (this.meta()?.pending_since == null) return true;
    if (this.unsettledMs() > 0 || (await this.svc.store.version(streamIdOf(this.paymentId()))) > this.version) return false;
    this.settled();
    return true;
  }

  /** How long an append of unknown outcome could still commit (0: none is pending, or it is older than RELAY_SETTLE_MS). */
  private unsettledMs() {
    const since = this.meta()?.pending_since;
    return since == null ? 0 : Math.max(0, since + this.svc.config.RELAY_SETTLE_MS - Date.now());
  }

  /**
   * The aggregate in memory moves on by these events. `decided`: the events of these documents as the decider made
   * them (an append's own), which need no reading back.
   */
  private fold(docs: EventDocument[], decided?: PaymentEvent[]) {
    if (decided) {
      decided.forEach((e, i) => (this.state = evolve(this.state, { ...e, eventId: eventIdOf(docs[i]!), version: docs[i]!.stream.version } as Recorded)));
      this.version = docs.at(-1)?.stream.version ?? this.version;
      return;
    }
    const replayed = replay(docs, { state: this.state, version: this.version });
    this.state = replayed.state;
    this.version = replayed.version;
    for (const u of replayed.unreadable)
      log("warn", "event not applied", { paymentId: this.paymentId(), version: u.version, eventType: u.eventType, problem: u.problem });
  }

  /** New events are progress: the watchdog's clock starts again. */
  private progressed(also: MetaChange = {}) {
    this.updateMeta({ ...also, progress_at: Date.now() });
    this.clearCounter("watchdog-round");
  }

  /**
   * How long a recovery timer waits: its period, doubled per round without progress (up to 32 times). The watchdog
   * and redelivery also wait at least twice the queue's observed lag, so that a backlog is not flooded with re-sent
   * messages; a failed alarm check (Cosmos unavailable) does not depend on the queue.
   */
  private backedOff(kind: "watchdog" | "redeliver" | "alarm", baseMs: number) {
    const period = baseMs * 2 ** Math.min(this.counter(`${kind}-round`) ?? 0, 5);
    return kind === "alarm" ? period : Math.max(period, 2 * this.queueLagMs);
  }

  private backOff(kind: "watchdog" | "redeliver" | "alarm") {
    this.setCounter(`${kind}-round`, (this.counter(`${kind}-round`) ?? 0) + 1);
  }

  /** Events known committed in Cosmos: applied (see `applied`), then published (see `published`). */
  private async committed(docs: EventDocument[]) {
    this.applied(docs);
    await this.published(docs);
  }

  /** Events known committed: the aggregate moves on, and live sockets hear of them. */
  private applied(docs: EventDocument[], decided?: PaymentEvent[]) {
    this.fold(docs, decided);
    const sockets = this.ctx.getWebSockets().filter((ws) => this.open(ws));
    if (sockets.length === 0) return;
    const payment = this.resource();
    for (const event of docs) {
      const message = JSON.stringify({ type: "event", event, payment });
      for (const ws of sockets) {
        try {
          ws.send(message);
        } catch {
          // A socket closing under us: the client reconnects and catches up over REST.
        }
      }
    }
  }

  /**
   * Events already applied: relayed, then kept in the object's copy. They are sent before anything is written: a
   * write would hold the send until it is durable (the output gate), and the relay's bookkeeping after the send then
   * commits with the copy, in one write, behind (see `bookkeeping`). A crash before it loses only the copy's new
   * events, which the next load reads from Cosmos and relays again (at least once).
   */
  private async published(docs: EventDocument[], onceRelayed: MetaChange = {}) {
    this.unrelayed.push(...docs);
    let change: MetaChange = {};
    try {
      change = { ...(await this.relay()), ...onceRelayed };
    } finally {
      // Kept even if the relay threw (the aggregate already holds them: the copy must not miss them), and in the
      // same write as the relay's bookkeeping (written behind, the whole queue at once): the copy never lags behind
      // relayed_version. Its callers have events (an append's, or a tail read that found some): progress,
      // recorded in the meta row's one update with the relay's.
      this.bookkeeping(() => {
        this.keep(docs);
        this.progressed(change);
        this.storeReplies();
      });
    }
  }

  /** The replies of keyed commands answered since the last bookkeeping write, stored for their keys. */
  private storeReplies() {
    for (let write = this.replies.shift(); write; write = this.replies.shift()) write();
  }

  /** Sends the committed events not yet relayed (on failure they stay for the alarm); returns the meta row's change, which its caller writes with its own. */
  private async relay(): Promise<MetaChange> {
    if (this.unrelayed.length === 0) return {};
    const batch = this.unrelayed;
    try {
      await this.send(batch);
    } catch (e) {
      log("error", "relay failed", { paymentId: this.paymentId(), error: String(e) });
      await this.ensureAlarm(Date.now() + this.svc.config.RELAY_CHECK_MS);
      return {};
    }
    const last = batch.at(-1)!.stream.version;
    await this.crash("after-send", last);
    this.unrelayed = this.unrelayed.filter((d) => d.stream.version > last);
    this.bookkeeping(() => this.setCounter("relayed-at", Date.now()));
    return { relayed_version: Math.max(this.meta()!.relayed_version, last) };
  }

  // ---- delivery: every relayed event must reach the consumer, which reports each one here ----

  /** Counts a delivery only for the event the object holds at its version: a message for an event Cosmos lost (its container restored under the object) is not the new event at that version. */
  private delivered(message: EventMessage) {
    const held = this.unconfirmedIds.get(message.version) ?? this.kept(message.version, message.version).map(eventIdOf)[0];
    if (held !== message.eventId) return;
    const delivered = this.deliveries();
    if (delivered.has(message.version)) return;
    this.bookkeeping(() => {
      this.write("INSERT OR IGNORE INTO deliveries VALUES (?)", message.version);
      this.clearCounter("redeliver-round");
    });
    delivered.add(message.version);
    this.unconfirmedIds.delete(message.version);
    this.sentAt.delete(message.version);
  }

  /** Relayed versions the consumer has not reported (a queue can lose messages, e.g. a local one on restart). */
  private undelivered(): number[] {
    const relayed = this.meta()?.relayed_version ?? 0;
    const seen = this.deliveries();
    return Array.from({ length: relayed }, (_, i) => i + 1).filter((v) => !seen.has(v));
  }

  private deliveries() {
    this.deliveredRows ??= new Set(this.sql.exec<{ version: number }>("SELECT version FROM deliveries").toArray().map((r) => r.version));
    return this.deliveredRows;
  }

  /** Each unconfirmed version's last send; one not sent since the object started takes the last relay's time, and keeps it. */
  private lastSends() {
    const relayedAt = this.counter("relayed-at") ?? 0;
    return this.undelivered().map((version) => {
      if (!this.sentAt.has(version)) this.sentAt.set(version, relayedAt);
      return { version, at: this.sentAt.get(version)! };
    });
  }

  /** When each unconfirmed version is due to be sent again: REDELIVER_AFTER_MS (backed off) after its last send. */
  private redeliveries() {
    const after = this.backedOff("redeliver", this.svc.config.REDELIVER_AFTER_MS);
    return this.lastSends().map(({ version, at }) => ({ version, dueAt: at + after }));
  }

  private async redeliverOverdue() {
    const due = this.redeliveries().flatMap((r) => (r.dueAt <= Date.now() ? [r.version] : []));
    if (due.length === 0) return;
    await this.send(this.kept(due[0]!).filter((d) => due.includes(d.stream.version)));
    for (const v of due) this.sentAt.set(v, Date.now()); // dated even if the copy lacked it: no alarm loop on it
    this.setCounter("relayed-at", Date.now());
    this.backOff("redeliver");
    log("warn", "events sent again: their delivery was never confirmed", { paymentId: this.paymentId(), versions: due.join(",") });
  }

  /** Publishes events, due in `delaySeconds`. */
  private async send(docs: EventDocument[], delaySeconds = 0) {
    const summary = this.state.status === "none" ? undefined : paymentSummary(this.state, this.version, this.ownerOf(this.state));
    for (const messages of batches(docs.map((d) => dueIn(eventMessage(d, summary), delaySeconds)))) {
      await this.env.EVENTS.sendBatch(messages);
      const sent = Date.now() + delaySeconds * 1000;
      const confirmed = this.deliveries(); // a re-driven step's trigger was confirmed before: nothing to wait for
      for (const m of messages) if (!confirmed.has(m.body.version)) this.sentAt.set(m.body.version, sent);
      for (const m of messages) log("info", "event relayed", { paymentId: this.paymentId(), eventId: m.body.eventId, version: m.body.version, type: m.body.type });
    }
  }

  // ---- alarms: the relay check and the watchdog ----

  /**
   * The alarm fires by `at`. One due sooner stays: firing early only checks and sets the next one, while each move is a
   * durable write (locally also a sync of the runtime's alarm index), and a payment's steps would move it each time.
   */
  private async ensureAlarm(at: number) {
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm();
    if (this.alarmAt === null || this.alarmAt > at) {
      await this.ctx.storage.setAlarm(at);
      this.alarmAt = at;
    }
  }

  private async scheduleAlarm({ activity } = { activity: true }) {
    const meta = this.meta();
    if (!meta) return;
    const c = this.svc.config;
    const due: number[] = [];
    if (meta.pending_since !== null || this.unrelayed.length > 0) due.push(Date.now() + c.RELAY_CHECK_MS);
    const redeliveries = this.redeliveries();
    if (redeliveries.length > 0) due.push(Math.max(Math.min(...redeliveries.map((r) => r.dueAt)), Date.now() + 1));
    if (this.dueSteps(false).length > 0) due.push(Math.max(meta.progress_at + this.backedOff("watchdog", c.WATCHDOG_MS), Date.now() + 1));
    const at = due.length > 0 ? Math.min(...due) : null;
    if (at === null || activity) this.holdWarm(at !== null);
    if (at === null) this.clearCounter("alarm-round");
    if (at !== null) return this.ensureAlarm(at);
    // Nothing is due: the bookkeeping is written now (with the alarm's deletion), as no alarm may be left to recover
    // it (one firing meanwhile has already left the platform's schedule).
    this.flushBehind();
    if (this.alarmAt === null) return;
    await this.ctx.storage.deleteAlarm();
    this.alarmAt = null;
  }

  /**
   * Anything scheduled means the lifecycle is in flight: stay in memory until WARM_HOLD_MS after the last command or
   * delivery. One timer, moved on only when it fires early: setting a new one at every step (and clearing the last)
   * cost the runtime more than the step's own logic.
   */
  private holdWarm(inFlight: boolean) {
    const holdMs = this.svc.config.WARM_HOLD_MS;
    if (!inFlight || holdMs === 0) {
      clearTimeout(this.warmHold);
      this.warmHold = undefined;
      return;
    }
    this.warmUntil = Date.now() + holdMs;
    this.warmHold ??= setTimeout(() => this.warmHoldDue(), holdMs);
  }

  private warmHoldDue() {
    const left = this.warmUntil - Date.now();
    this.warmHold = left > 0 ? setTimeout(() => this.warmHoldDue(), left) : undefined;
  }

  // ---- small helpers ----

  private meta(): Meta | null {
    if (this.metaRow === undefined)
      this.metaRow = this.sql.exec<Meta>("SELECT payment_id, relayed_version, pending_since, progress_at FROM meta").toArray()[0] ?? null;
    return this.metaRow;
  }

  /** Writes only the columns that change (a step's bookkeeping clears a marker its append never set). */
  private updateMeta(change: MetaChange) {
    const meta = this.meta();
    const changed = Object.entries(change).filter(([column, value]) => meta?.[column as keyof Meta] !== value);
    if (!meta || changed.length === 0) return;
    this.write(`UPDATE meta SET ${changed.map(([column]) => `${column} = ?`).join(", ")}`, ...changed.map(([, value]) => value));
    this.metaRow = { ...meta, ...change };
  }

  private remember(paymentId: string) {
    if (this.meta()) return;
    const progressAt = Date.now();
    const inserted = this.sql.exec("INSERT OR IGNORE INTO meta (id, payment_id, progress_at) VALUES (1, ?, ?)", paymentId, progressAt).rowsWritten > 0;
    this.metaRow = inserted ? { payment_id: paymentId, relayed_version: 0, pending_since: null, progress_at: progressAt } : undefined;
  }

  /** The counters, all read at once (a handful of rows). */
  private counters() {
    this.counterRows ??= new Map(this.sql.exec<{ key: string; value: number }>("SELECT key, value FROM counters").toArray().map((r) => [r.key, r.value]));
    return this.counterRows;
  }

  private counter(key: string): number | undefined {
    return this.counters().get(key);
  }

  private setCounter(key: string, value: number) {
    this.write("INSERT OR REPLACE INTO counters VALUES (?, ?)", key, value);
    this.counters().set(key, value);
  }

  /** Deletes only what is there: most calls find nothing to delete. */
  private clearCounter(key: string) {
    if (!this.counters().delete(key)) return;
    this.write("DELETE FROM counters WHERE key = ?", key);
  }

  private setPending(since: number | null) {
    this.updateMeta({ pending_since: since });
  }

  private stepRow(triggerId: string) {
    return this.sql
      .exec<{ attempts: number; attempted_at: number | null; last_error: string | null; done_at: number | null }>(
        "SELECT attempts, attempted_at, last_error, done_at FROM steps WHERE trigger_id = ?",
        triggerId,
      )
      .toArray()[0];
  }

  private paymentId() {
    return this.meta()!.payment_id;
  }

  private ownerOf(p: Payment) {
    return p.merchantId ?? this.svc.config.LEGACY_MERCHANT_ID;
  }

  /** The payment if the caller owns it; any other merchant gets the same answer as for a payment that does not exist. */
  private async owned(caller: Caller, paymentId: string): Promise<{ ok: true; payment: Payment } | Failure> {
    await this.ensureLoaded(paymentId);
    if (this.state.status === "none" || this.ownerOf(this.state) !== caller.merchantId) return failure("payment_not_found", "no such payment");
    return { ok: true, payment: this.state };
  }

  private resource() {
    return paymentResource(this.state as Payment, this.version);
  }

  /** Crashes for real once what was written so far is durable (as the output gate guarantees before any fetch). */
  private async crash(point: CrashPoint, version: number) {
    const c = this.svc.config;
    // Injected aborts are counted durably, so that a crash point is not hit again by every next instance.
    const aborts = () => this.ctx.storage.kv.get<number>("injected-aborts") ?? 0;
    const chaos = () => c.FAULT_ABORT_RATE > 0 && faultFires(c.FAULT_SEED, c.FAULT_ABORT_RATE, "abort", this.paymentId(), point, version, aborts());
    if (!this.crashPoints.has(`${point}@${version}`) && !chaos()) return;
    this.ctx.storage.kv.put("injected-aborts", aborts() + 1);
    await this.ctx.storage.sync();
    this.ctx.abort(`crash point ${point}@${version}`);
  }
}

const now = () => new Date().toISOString();
/** Closes a live socket; one already closing or broken (closed by the object first) hears nothing more either way. */
function closeSocket(ws: WebSocket, code: number, reason: string) {
  try {
    ws.close(code, reason);
  } catch {
    // already closing or closed
  }
}
/**
 * An ISO 8601 time as [milliseconds since the epoch, nanoseconds below them]: Date.parse keeps milliseconds only, and
 * .NET (Regis Pay's documents) writes seven digits of a second. NaN milliseconds for a time that does not parse.
 */
const instant = (iso: string): [number, number] => {
  const below = /\.\d{3}(\d{1,6})/.exec(iso)?.[1] ?? "";
  return [Date.parse(iso.replace(/(\.\d{3})\d+/, "$1")), Number(below.padEnd(6, "0"))];
};
/** Whether time a is at or before time b (false when either does not parse). */
const notAfter = (a: [number, number], b: [number, number]) => a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]);
const lagReason = "an append committed that Cosmos's reads do not show yet";
const nowSeconds = () => Math.floor(Date.now() / 1000);
