// The task queue: tasks handed to this session and not yet shown.
//
// The next batch is requested while a few tasks are still queued (prefetch), so the
// next question is always on screen the moment a key is pressed. When the server has
// nothing, or cannot be reached, the queue asks again later on its own. The first
// request of a page load says `reload`, so tasks an earlier page held come back.

const POLL_MS = [2000, 4000, 8000, 15000];

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

  schedulePoll() {
    const delay = POLL_MS[Math.min(this.polls, POLL_MS.length - 1)];
    this.polls += 1;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      if (this.items.length <= this.threshold) this.fetch();
    }, delay);
  }
}
