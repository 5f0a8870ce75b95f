// The outbox: answers wait here until the server confirms the ledger has them.
//
// It flushes in batches (when a batch is full, on a timer, on save, when the page is
// hidden), one request at a time. A failed flush is retried with backoff; an answer
// the server refuses (4xx) is isolated from the rest of its batch and held, with the
// server's message, instead of being dropped. The outbox is mirrored to localStorage,
// so even a crashed tab sends its answers on the next visit. Re-sending is always
// safe: the server deduplicates answers, and the latest answer to a task wins.

import { ApiError } from "./api.js";

const FLUSH_DELAY_MS = 4000;
const BACKOFF_MS = [1000, 2000, 4000, 8000];
const BEACON_BYTES = 60000; // keepalive requests share a 64 KiB budget per page

/** The key of one answer: its task. A newer answer to the same task replaces it. */
const keyOf = (answer) => String(answer._task_hash);

export class Outbox {
  /**
   * @param {import("./api.js").Api} api
   * @param {{batchSize?: number, instant?: boolean, storageKey?: string|null,
   *          onChange?: Function, onSaved?: Function}} options
   */
  constructor(
    api,
    { batchSize = 10, instant = false, storageKey = null, onChange = () => {}, onSaved = () => {} } = {},
  ) {
    this.api = api;
    this.batchSize = Math.max(1, batchSize);
    this.instant = instant; // send every answer at once (QUORUM_INSTANT_SUBMIT)
    this.storageKey = storageKey;
    this.onChange = onChange;
    this.onSaved = onSaved;
    /** @type {Map<string, {key: string, answer: object, held: boolean, error: string|null}>} */
    this.entries = new Map();
    this.sending = new Set();
    this.running = null;
    this.rerun = false;
    this.failures = 0;
    this.lastError = null;
    this.retryAt = 0;
    this.retryTimer = null;
    this.flushTimer = null;
    this.restore();
  }

  // -- what the app calls ------------------------------------------------------------

  /** Queue an answer (replacing an unsent answer to the same task) and maybe flush. */
  put(answer) {
    const key = keyOf(answer);
    this.entries.delete(key);
    this.entries.set(key, { key, answer, held: false, error: null });
    this.changed();
    if (this.retryTimer) return; // backing off: the retry timer sends it
    if (this.instant || this.pending().length >= this.batchSize) this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
  }

  /** Take back an answer that has not left yet (undo). True if it was still here. */
  retract(taskHash) {
    const key = String(taskHash);
    const entry = this.entries.get(key);
    if (!entry || this.sending.has(key)) return false;
    this.entries.delete(key);
    this.changed();
    return true;
  }

  /** Has this task an answer waiting here? */
  has(taskHash) {
    return this.entries.has(String(taskHash));
  }

  /** Answers not yet confirmed (sending or waiting), and those the server refused. */
  get size() {
    return this.entries.size;
  }

  pending() {
    return [...this.entries.values()].filter((e) => !e.held);
  }

  held() {
    return [...this.entries.values()].filter((e) => e.held);
  }

  /**
   * Send everything now. `force` (save, "retry now") also retries held answers and
   * skips the backoff wait. Resolves when this round is over, successful or not.
   */
  flush({ force = false } = {}) {
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (force) {
      for (const entry of this.entries.values()) {
        entry.held = false;
        entry.error = null;
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
    const waiting = this.pending();
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
        .catch(() => {}); // still in localStorage: the next visit sends it
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
    for (const entry of this.held()) this.entries.delete(entry.key);
    this.changed();
  }

  /** What the status line shows. */
  status() {
    const held = this.held();
    const waiting = this.entries.size - held.length;
    let state = "saved";
    if (this.lastError && waiting) state = this.lastError.offline ? "offline" : "error";
    else if (this.sending.size) state = "saving";
    else if (waiting) state = "waiting";
    else if (held.length) state = "held";
    return {
      state,
      waiting,
      held: held.length,
      heldMessage: held.length ? held[held.length - 1].error : null,
      error: this.lastError ? this.lastError.message : null,
      retryAt: this.retryAt,
    };
  }

  // -- internals ---------------------------------------------------------------------

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
          this.scheduleRetry();
          return;
        }
        // The server refused the batch, which is all or nothing: find the answer it
        // refuses by sending smaller batches (halves for "too large", else one by one).
        if (batch.length > 1) {
          size = err.status === 413 ? Math.ceil(batch.length / 2) : 1;
          continue;
        }
        const [entry] = batch;
        if (this.entries.get(entry.key) === entry) {
          entry.held = true;
          entry.error = err.message;
        }
      } finally {
        for (const entry of batch) this.sending.delete(entry.key);
        this.changed();
      }
    }
  }

  /** The server has these answers: forget them unless a newer answer replaced one. */
  confirmed(entries, result) {
    for (const entry of entries) {
      if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    }
    this.changed();
    this.onSaved(result);
  }

  scheduleRetry() {
    this.cancelRetry();
    const base = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length) - 1];
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryAt = 0;
      this.flush();
    }, delay);
  }

  cancelRetry() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
  }

  changed() {
    this.persist();
    this.onChange(this.status());
  }

  persist() {
    if (!this.storageKey) return;
    try {
      if (this.entries.size) {
        const saved = [...this.entries.values()].map(({ answer, held, error }) => ({ answer, held, error }));
        localStorage.setItem(this.storageKey, JSON.stringify(saved));
      } else {
        localStorage.removeItem(this.storageKey);
      }
    } catch {
      // Storage full or disabled: the outbox still works in memory.
    }
  }

  restore() {
    if (!this.storageKey) return;
    try {
      const saved = JSON.parse(localStorage.getItem(this.storageKey) || "[]");
      for (const { answer, held, error } of saved) {
        if (answer && answer._task_hash !== undefined) {
          const key = keyOf(answer);
          this.entries.set(key, { key, answer, held: Boolean(held), error: error || null });
        }
      }
    } catch {
      // A damaged entry must not stop the app; there is nothing sensible to recover.
    }
  }
}
