// The outbox: answers wait here until the server confirms the ledger has them.
//
// An answer is given once it is on disk (store.js, IndexedDB with strict durability):
// only then is it sent, so a browser killed right after an answer sends it on the next
// visit. The outbox flushes in batches (when a batch is full, on a timer, on save, when
// the page is hidden), one request at a time. A failed flush is retried with backoff,
// no sooner than a 503's `Retry-After`. A batch is all or nothing on the server, so when
// it refuses one answer, nothing of the batch was stored: the refused answer is found
// (the server names it, or smaller batches do) and the rest is sent again. An answer that
// can never be accepted as it is (surplus, invalid, refused by the recipe, expired token)
// is dropped and reported: the app brings a recipe's refusal back on screen to be fixed,
// since resending it unchanged would only be refused again. One refused for another
// reason is held, with the server's message, for the annotator to retry or discard.
// Re-sending is always safe: an answer keeps its decision key on every retry, so the
// server records it once, and the latest decision on a task wins.

import { ApiError } from "./api.js";

const FLUSH_DELAY_MS = 4000;
const BACKOFF_MS = [1000, 2000, 4000, 8000];
const MAX_RETRY_MS = 60000; // however long a `Retry-After` asks for
const BEACON_BYTES = 60000; // keepalive requests share a 64 KiB budget per page

/** The key of one answer: its task. A newer answer to the same task replaces it. */
const keyOf = (answer) => String(answer._task_hash);

/** What the store keeps of an entry. */
const recordOf = ({ key, answer, held, error, seq }) => ({ key, answer, held, error, seq });

export class Outbox {
  /**
   * @param {import("./api.js").Api} api
   * @param {{batchSize?: number, instant?: boolean, store: import("./store.js").AnswerStore,
   *          onChange?: Function, onSaved?: Function, onDropped?: Function}} options
   *   `onSaved(result, taskHashes)`: the server has the answers to these tasks;
   *   `onDropped([{answer, error}])`: answers the server will never accept as they are
   *   were let go; called once per flush round, with all of them
   */
  constructor(
    api,
    { batchSize = 10, instant = false, store, onChange = () => {}, onSaved = () => {}, onDropped = () => {} },
  ) {
    this.api = api;
    this.batchSize = Math.max(1, batchSize);
    this.instant = instant; // send every answer at once (QUORUM_INSTANT_SUBMIT)
    this.store = store;
    this.onChange = onChange;
    this.onSaved = onSaved;
    this.onDropped = onDropped;
    /** @type {Map<string, {key: string, answer: object, held: boolean, error: string|null,
     *                      stored: boolean, seq: number}>} in the order they were given */
    this.entries = new Map();
    this.seq = 0;
    this.sending = new Set();
    this.running = null;
    this.rerun = false;
    this.failures = 0;
    this.lastError = null;
    this.retryAt = 0;
    this.retryTimer = null;
    this.flushTimer = null;
    this.dropped = []; // this round's answers let go, reported when the round is over
  }

  /** Take in the answers an earlier page left on disk. */
  async open() {
    for (const record of await this.store.load()) {
      const entry = { ...recordOf(record), held: Boolean(record.held), error: record.error || null, stored: true };
      this.entries.set(entry.key, entry);
      this.seq = Math.max(this.seq, entry.seq);
    }
    this.changed();
  }

  // -- what the app calls ------------------------------------------------------------

  /**
   * Queue an answer (replacing an unsent answer to the same task). It is given once on
   * disk: the returned promise resolves then, and only then may it be sent.
   */
  put(answer) {
    const key = keyOf(answer);
    const entry = { key, answer, held: false, error: null, stored: false, seq: ++this.seq };
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.changed();
    return this.store
      .put([recordOf(entry)])
      .catch((err) => console.warn("could not keep an answer on disk; it is sent from memory", err))
      .then(() => {
        entry.stored = true;
        if (this.entries.get(key) !== entry) return; // replaced or taken back meanwhile
        this.changed();
        this.schedule();
      });
  }

  /** Take back an answer that has not left yet (undo). True if it was still here. */
  retract(taskHash) {
    const key = String(taskHash);
    const entry = this.entries.get(key);
    if (!entry || this.sending.has(key)) return false;
    this.forget(entry);
    this.changed();
    return true;
  }

  /** Has this task an answer waiting here? */
  has(taskHash) {
    return this.entries.has(String(taskHash));
  }

  /** Answers not yet confirmed (on their way to disk, sending or waiting), and held ones. */
  get size() {
    return this.entries.size;
  }

  /** Answers on disk and ready to send. */
  pending() {
    return [...this.entries.values()].filter((e) => e.stored && !e.held);
  }

  held() {
    return [...this.entries.values()].filter((e) => e.held);
  }

  /** Answers whose write to disk has not resolved yet. */
  unstored() {
    return [...this.entries.values()].filter((e) => !e.stored).length;
  }

  /**
   * Send everything now. `force` (save, "retry now") also retries held answers and
   * skips the backoff wait. Resolves when this round is over, successful or not.
   */
  flush({ force = false } = {}) {
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (force) {
      for (const entry of this.held()) {
        entry.held = false;
        entry.error = null;
        this.keep(entry);
      }
      this.failures = 0;
      this.cancelRetry();
    }
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    this.running = this.drain().finally(() => {
      this.running = null;
      if (this.dropped.length) this.onDropped(this.dropped.splice(0));
      if (this.rerun) {
        this.rerun = false;
        if (!this.retryTimer) this.flush();
      }
      this.changed();
    });
    return this.running;
  }

  /** The page is going away: hand what is waiting to the browser, to send after we are gone. */
  flushOnHide() {
    const waiting = [...this.entries.values()].filter((e) => !e.held);
    let chunk = [];
    let bytes = 0;
    const send = (entries) => {
      if (!entries.length) return;
      this.api
        .giveAnswers(
          entries.map((e) => e.answer),
          { keepalive: true },
        )
        .then((result) => this.confirmed(entries, result))
        .catch(() => {}); // still on disk: the next visit sends it
    };
    for (const entry of waiting) {
      const size = JSON.stringify(entry.answer).length + 1;
      if (chunk.length && bytes + size > BEACON_BYTES) {
        send(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(entry);
      bytes += size;
    }
    send(chunk);
  }

  /** Drop the answers the server refused (the annotator decided to let them go). */
  discardHeld() {
    for (const entry of this.held()) this.forget(entry);
    this.changed();
  }

  /** Stop waiting for the retry timer: the network is back, or the annotator insists. */
  cancelRetry() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
  }

  /** What the status line shows. */
  status() {
    const held = this.held();
    const waiting = this.entries.size - held.length;
    const err = this.lastError;
    let state = "saved";
    if (err && waiting) state = err.offline ? "offline" : err.busy ? "busy" : "error";
    else if (this.sending.size || this.unstored()) state = "saving";
    else if (waiting) state = "waiting";
    else if (held.length) state = "held";
    return {
      state,
      waiting,
      held: held.length,
      heldMessage: held.length ? held[held.length - 1].error : null,
      error: err ? err.message : null,
      retryAt: this.retryAt,
    };
  }

  // -- internals ---------------------------------------------------------------------

  /** A newly stored answer: send it now, with its batch, or soon. */
  schedule() {
    if (this.retryTimer) return; // backing off: the retry timer sends it
    if (this.instant || this.pending().length >= this.batchSize) this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
  }

  async drain() {
    let size = this.batchSize;
    for (;;) {
      const batch = this.pending().slice(0, size);
      if (!batch.length) return;
      for (const entry of batch) this.sending.add(entry.key);
      this.changed();
      try {
        const result = await this.api.giveAnswers(batch.map((e) => e.answer));
        this.failures = 0;
        this.lastError = null;
        this.confirmed(batch, result);
      } catch (raw) {
        const err = raw instanceof ApiError ? raw : new ApiError(0, "network", String(raw));
        if (err.retryable) {
          this.lastError = err;
          this.failures += 1;
          this.scheduleRetry(err);
          return;
        }
        this.failures = 0; // the server answered: a refusal is no outage
        this.lastError = null;
        // Refused, and the batch is all or nothing: none of it was stored. Let the
        // answer the server names go and send the rest again; if it names none, find
        // it with smaller batches (halves for "too large", else one by one).
        const named = err.taskHash === null ? undefined : batch.find((e) => e.key === err.taskHash);
        if (named && err.final) {
          this.refused(named, err);
          continue;
        }
        if (batch.length > 1) {
          size = err.status === 413 ? Math.ceil(batch.length / 2) : 1;
          continue;
        }
        this.refused(batch[0], err);
      } finally {
        for (const entry of batch) this.sending.delete(entry.key);
        this.changed();
      }
    }
  }

  /** The server refused this one answer: drop it if it can never be accepted, else hold it. */
  refused(entry, err) {
    if (this.entries.get(entry.key) !== entry) return; // a newer answer replaced it
    if (err.final) {
      this.forget(entry);
      this.dropped.push({ answer: entry.answer, error: err });
      return;
    }
    entry.held = true;
    entry.error = err.message;
    this.keep(entry);
  }

  /** The server has these answers: forget them unless a newer answer replaced one. */
  confirmed(entries, result) {
    for (const entry of entries) {
      if (this.entries.get(entry.key) === entry) this.forget(entry);
    }
    this.changed();
    this.onSaved(result, entries.map((e) => e.key));
  }

  scheduleRetry(err) {
    this.cancelRetry();
    const base = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length) - 1];
    let delay = base * (0.8 + Math.random() * 0.4);
    // A busy server says when to come back: never sooner, spread out a little.
    if (err.retryAfter !== null) delay = Math.max(delay, err.retryAfter * 1000 * (1 + Math.random() * 0.2));
    delay = Math.round(Math.min(delay, MAX_RETRY_MS));
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryAt = 0;
      this.flush();
    }, delay);
  }

  /** Rewrite an entry on disk (held or not); an entry not yet stored is written by `put`. */
  keep(entry) {
    if (entry.stored) this.store.put([recordOf(entry)]).catch(() => {});
  }

  /** Take an entry out, here and on disk. */
  forget(entry) {
    this.entries.delete(entry.key);
    this.store.remove([entry.key]).catch(() => {});
  }

  changed() {
    this.onChange(this.status());
  }
}
