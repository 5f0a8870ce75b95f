// The task queue: tasks handed to this session and not yet shown.
//
// The next batch is requested while a few tasks are still queued (prefetch), so the
// next question is always on screen the moment a key is pressed. When the server has
// nothing, or cannot be reached, the queue asks again later on its own. The first
// request of a page load says `reload`, so tasks an earlier page held come back. Each
// task remembers which request brought it: tasks that came together carry tokens of the
// same age, so when one token has expired, its batch-mates still queued have too.

const POLL_MS = [2000, 4000, 8000, 15000];
const MAX_POLL_MS = 60000; // however long a busy server's `Retry-After` asks for

export class TaskQueue {
  /**
   * @param {import("./api.js").Api} api
   * @param {{batchSize?: number, skip?: (hash: string) => boolean,
   *          onProgress?: Function, onChange?: Function}} options
   */
  constructor(api, { batchSize = 10, skip = () => false, onProgress = () => {}, onChange = () => {} } = {}) {
    this.api = api;
    this.skip = skip;
    this.onProgress = onProgress;
    this.onChange = onChange;
    // Ask for more while this many tasks are still queued behind the current one.
    this.threshold = Math.max(1, Math.floor(batchSize / 2));
    this.items = [];
    this.seen = new Set();
    this.batchOf = new Map(); // task hash -> the number of the request that brought it
    this.loading = null;
    this.drained = false; // the last request brought nothing new
    this.error = null;
    this.polls = 0;
    this.pollTimer = null;
    this.requests = 0;
    this.reload = true; // until the first answer from the server
  }

  get length() {
    return this.items.length;
  }

  /** The next task, or undefined; asks the server for more when running low. */
  shift() {
    const task = this.items.shift();
    this.prefetch();
    return task;
  }

  /** Put a task back at the front (undo brings an older task back on screen). */
  unshift(task) {
    this.seen.add(String(task._task_hash));
    this.items.unshift(task);
  }

  /** Take this task out of the queue (to put it back in front): the task, or undefined. */
  withdraw(hash) {
    const index = this.items.findIndex((task) => String(task._task_hash) === String(hash));
    return index < 0 ? undefined : this.items.splice(index, 1)[0];
  }

  /** Request the next batch if few tasks are left and no request or retry is pending. */
  prefetch() {
    if (this.items.length <= this.threshold && !this.loading && !this.pollTimer) this.fetch();
  }

  /** Ask the server for tasks now (once at a time); resolves when the answer is in. */
  fetch() {
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
    if (this.loading) return this.loading;
    this.requests += 1;
    const request = this.requests;
    this.loading = this.api
      .questions({ reload: this.reload })
      .then((data) => {
        this.reload = false;
        this.error = null;
        this.onProgress(data);
        let added = 0;
        for (const task of Array.isArray(data.tasks) ? data.tasks : []) {
          if (!task || typeof task !== "object") continue;
          const key = String(task._task_hash);
          if (this.seen.has(key) || this.skip(key)) continue;
          this.seen.add(key);
          this.batchOf.set(key, request);
          this.items.push(task);
          added += 1;
        }
        this.drained = added === 0;
        if (added) this.polls = 0;
      })
      .catch((err) => {
        this.error = err;
      })
      .finally(() => {
        this.loading = null;
        if (this.drained || this.error) this.schedulePoll();
        this.onChange();
      });
    return this.loading;
  }

  /**
   * Tokens of these tasks expired: drop the queued tasks that came with them or before
   * (their tokens are no younger), then ask once for fresh ones. Dropped and expired
   * tasks may come back later, handed out anew.
   */
  renew(expiredHashes) {
    const upTo = this.staleUpTo(expiredHashes);
    const stale = this.items.filter((task) => this.isStale(task._task_hash, upTo));
    this.items = this.items.filter((task) => !stale.includes(task));
    for (const hash of [...expiredHashes, ...stale.map((task) => task._task_hash)]) this.forget(hash);
    this.fetch();
  }

  /** The newest request that brought one of these tasks (0: none of this page's). */
  staleUpTo(hashes) {
    return Math.max(0, ...hashes.map((hash) => this.batchOf.get(String(hash)) ?? 0));
  }

  /** Did this task come with request `upTo` or before it? */
  isStale(hash, upTo) {
    const batch = this.batchOf.get(String(hash));
    return batch !== undefined && batch <= upTo;
  }

  /** Let this task be handed out again (its answer was dropped, or it was). */
  forget(hash) {
    this.seen.delete(String(hash));
    this.batchOf.delete(String(hash));
  }

  schedulePoll() {
    let delay = POLL_MS[Math.min(this.polls, POLL_MS.length - 1)];
    // A busy server says when to come back (`503` + `Retry-After`): never sooner.
    if (this.error && this.error.retryAfter) {
      delay = Math.min(Math.max(delay, this.error.retryAfter * 1000), MAX_POLL_MS);
    }
    this.polls += 1;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      if (this.items.length <= this.threshold) this.fetch();
    }, delay);
  }
}
