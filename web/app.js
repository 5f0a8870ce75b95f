// The annotation app: one question at a time, everything on the keyboard.
//
// It talks only to the feed API (api.js). Answers go to the outbox (outbox.js), which
// sends them in the background; the next task comes from the queue (queue.js), which
// is refilled before it runs out. A key press therefore never waits on the network:
// the next question is rendered in the same event handler. The page keeps nothing a
// reload could not rebuild, except unsent answers (the outbox, on disk in IndexedDB).

import { Api } from "./api.js";
import { applyTheme, historySize, shownButtons } from "./config.js";
import { decided } from "./decision.js";
import { h } from "./dom.js";
import { setUpInstructions, toggleDialog } from "./instructions.js";
import { eventKey, Keymap } from "./keymap.js";
import { Outbox } from "./outbox.js";
import {
  plural,
  renderActions,
  renderNotice,
  renderProgress,
  renderRefusal,
  renderSession,
  renderStatus,
  sentence,
} from "./panels.js";
import { TaskQueue } from "./queue.js";
import { SESSION_NAME, askForSession, sessionFromUrl } from "./session.js";
import { AnswerStore } from "./store.js";
import { createView } from "./views/index.js";

const HISTORY_LIMIT = 50; // answers undo can bring back, at least
const INSTRUCTIONS_KEY = "i";
const WORDS = { accept: "accepted", reject: "rejected", ignore: "ignored" };

const $ = (id) => document.getElementById(id);

class App {
  constructor(session) {
    this.session = session;
    this.api = new Api(session);
    this.project = null;
    this.current = null; // {task, view}
    this.history = []; // [{task, answer, state}], oldest first
    this.drafts = new Map(); // task hash -> edit state of a task put back by undo
    this.refusals = new Map(); // task hash -> why the recipe refused the answer, until answered again
    this.answered = new Set(); // task hashes whose answers the server confirmed to this page
    this.counts = { accept: 0, reject: 0, ignore: 0 };
    this.activeLabel = null;
    this.progress = null;
    this.hintTimer = null;
    this.hintSeq = 0; // counts what the hint line said, so a later message is not overwritten
    this.drops = { expired: 0, invalid: [] }; // dropped answers the annotator has not dismissed
    this.keymap = new Keymap(); // the default keys until the project config says otherwise
    this.historySize = historySize();
    this.instructionsKey = null; // `i`, when the project has instructions and no action took the key
  }

  // -- start-up ------------------------------------------------------------------------

  async start() {
    $("session").textContent = this.session;
    $("session").hidden = false;
    this.renderEmpty("Loading the project…");
    this.project = await this.loadProject();
    const { dataset } = this.project;
    document.title = `${dataset} · Quorum`;
    $("project-name").replaceChildren(
      h("strong", {}, dataset),
      this.project.recipe_name ? h("span", { class: "muted" }, ` · ${this.project.recipe_name}`) : null,
    );
    this.applyConfig();
    const labels = this.labels();
    if (labels.length === 1) this.activeLabel = labels[0];
    const batchSize = Number(this.project.batch_size) || 10;
    this.countsKey = `quorum:counts:${dataset}:${this.session}`;
    this.restoreCounts();
    this.outbox = new Outbox(this.api, {
      batchSize,
      instant: Boolean(this.project.instant_submit),
      // Earlier versions kept the outbox in localStorage under the old key: moved in.
      store: await AnswerStore.open(`${dataset}:${this.session}`, `quorum:outbox:${dataset}:${this.session}`),
      onChange: () => this.renderStatus(),
      onSaved: (result, taskHashes) => {
        for (const hash of taskHashes) this.answered.add(hash);
        this.setProgress(result);
      },
      onDropped: (dropped) => this.dropped(dropped),
    });
    await this.outbox.open();
    this.queue = new TaskQueue(this.api, {
      batchSize,
      // Not again what this page answered, even when a reply crossed the answer in flight.
      skip: (hash) =>
        this.outbox.has(hash) ||
        this.answered.has(hash) ||
        this.history.some((e) => String(e.task._task_hash) === hash),
      onProgress: (data) => this.setProgress(data),
      onChange: () => this.queueChanged(),
    });
    this.bindPageEvents();
    this.renderStatus();
    this.renderSide();
    if (this.outbox.size) this.outbox.flush();
    await this.queue.fetch();
    if (!this.current) this.next();
  }

  /** What the project's config asks of the page: keys, buttons, history, theme, instructions. */
  applyConfig() {
    const config = this.project;
    this.keymap = new Keymap(config.keymap);
    this.historySize = historySize(config.history_size);
    applyTheme(config.custom_theme);
    const hasInstructions = setUpInstructions(config.instructions);
    this.instructionsKey = hasInstructions && !this.keymap.bound(INSTRUCTIONS_KEY) ? INSTRUCTIONS_KEY : null;
    renderActions(this.keymap, shownButtons(config.buttons), this.instructionsKey);
    $("history-panel").hidden = this.historySize === 0;
  }

  async loadProject() {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.api.project();
      } catch (err) {
        const wait = Math.min(2000 * 2 ** attempt, 15000);
        this.renderEmpty(
          "Can't load the project",
          `${sentence(err.message)} Trying again in ${Math.round(wait / 1000)} s. ` +
            "If this goes on, check that the Quorum server is running.",
          "error",
        );
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  labels() {
    return Array.isArray(this.project?.labels) ? this.project.labels.map(String) : [];
  }

  // -- the question on screen ----------------------------------------------------------

  /** Show the next queued task, or say why there is none. */
  next() {
    const task = this.queue.shift();
    if (task) {
      const key = String(task._task_hash);
      const draft = this.drafts.get(key) ?? null;
      this.drafts.delete(key);
      this.show(task, draft);
      return;
    }
    this.current = null;
    this.renderWaiting();
  }

  show(task, state) {
    const ctx = {
      project: this.project,
      labels: this.labels(),
      state,
      keyLabel: (action) => this.keymap.label(action),
      activeLabel: () => this.activeLabel,
      setActiveLabel: (label) => {
        this.activeLabel = label;
      },
      hint: (message, tone) => this.hint(message, tone),
      submit: (decision) => queueMicrotask(() => this.answer(decision)),
    };
    let view;
    try {
      view = createView(task, ctx);
    } catch (err) {
      // A task this app cannot draw must not blank the page; say so and let it be skipped.
      console.error(err);
      view = {
        viewId: "text",
        body: h("div", { class: "text" }, typeof task.text === "string" ? task.text : ""),
        toolbar: null,
        problems: [`This task could not be shown (${err.message}). Skip it with space and tell the project owner.`],
        hint: "",
        extras: () => ({}),
        snapshot: () => ({}),
        key: () => false,
      };
    }
    this.current = { task, view };
    const card = $("card");
    card.dataset.taskHash = String(task._task_hash);
    card.dataset.view = view.viewId;
    card.classList.remove("is-empty");
    $("problems").replaceChildren(...view.problems.map((p) => h("p", { class: "problem", role: "note" }, p)));
    $("card-body").replaceChildren(view.body);
    $("toolbar").replaceChildren(...(view.toolbar ? [view.toolbar] : []));
    $("card-meta").replaceChildren(...this.metaItems(task));
    renderRefusal(this.refusals.get(String(task._task_hash)) ?? null);
    this.defaultHint = view.hint || "";
    this.hint("");
    this.setActionsEnabled(true);
  }

  metaItems(task) {
    const meta = task.meta && typeof task.meta === "object" ? task.meta : {};
    return Object.entries(meta)
      .filter(([, v]) => v === null || typeof v !== "object")
      .slice(0, 6)
      .map(([k, v]) => h("span", { class: "meta-item" }, h("span", { class: "muted" }, `${k} `), String(v)));
  }

  renderEmpty(title, detail = "", tone = "") {
    const card = $("card");
    delete card.dataset.taskHash;
    card.dataset.view = "";
    card.classList.add("is-empty");
    $("problems").replaceChildren();
    $("toolbar").replaceChildren();
    $("card-meta").replaceChildren();
    renderRefusal(null);
    $("card-body").replaceChildren(
      h(
        "div",
        { class: `empty-state ${tone}` },
        h("p", { class: "empty-title" }, title),
        detail ? h("p", { class: "muted" }, detail) : null,
      ),
    );
    this.setActionsEnabled(false);
    this.defaultHint = "";
    this.hint("");
  }

  renderWaiting() {
    const queue = this.queue;
    if (queue.error && !queue.loading && !queue.error.retryable) {
      this.renderEmpty(
        `The server won't hand out tasks to “${this.session}”`,
        `${sentence(queue.error.message)} Check the session name in the address ` +
          "(?session=NAME). This page keeps asking, slowly.",
        "error",
      );
    } else if (queue.error && !queue.loading) {
      this.renderEmpty(
        "Can't get new tasks",
        `${sentence(queue.error.message)} Trying again on its own; your answers are kept in ` +
          "this browser until the server has them.",
        "error",
      );
    } else if (queue.loading || queue.requests === 0) {
      this.renderEmpty("Loading tasks…");
    } else {
      this.renderEmpty(
        "No tasks available right now.",
        "Everything handed out so far is answered. This page checks for new tasks on its own; " +
          "you can also leave it open.",
      );
    }
  }

  queueChanged() {
    if (!this.current) this.next();
    this.renderSide();
  }

  setActionsEnabled(on) {
    for (const id of ["btn-accept", "btn-reject", "btn-ignore"]) $(id).disabled = !on;
  }

  // -- answering -----------------------------------------------------------------------

  answer(decision) {
    if (!this.current) {
      this.hint("There is no task on screen to answer.", "info");
      return;
    }
    const { task, view } = this.current;
    // Every decision gets a key of its own; retries of it keep that key.
    const answer = decided({ ...task, ...view.extras(), answer: decision });
    this.refusals.delete(String(task._task_hash));
    this.outbox.put(answer);
    this.history.push({ task, answer, state: view.snapshot() });
    if (this.history.length > Math.max(HISTORY_LIMIT, this.historySize)) this.history.shift();
    this.counts[decision] += 1;
    this.saveCounts();
    this.next();
    this.renderSide();
  }

  undo() {
    const last = this.history.pop();
    if (!last) {
      this.hint("Nothing to undo yet.", "info");
      return;
    }
    const decision = last.answer.answer;
    this.counts[decision] = Math.max(0, this.counts[decision] - 1);
    this.saveCounts();
    // Still waiting in the outbox: take it back. Already sent: the next answer replaces it.
    this.outbox.retract(last.task._task_hash);
    if (this.current) {
      this.drafts.set(String(this.current.task._task_hash), this.current.view.snapshot());
      this.queue.unshift(this.current.task);
    }
    this.show(last.task, last.state);
    this.hint(`Back to the last task (you had ${WORDS[decision]} it). Answer it again.`, "info");
    this.renderSide();
  }

  /**
   * The outbox let these answers go for good: take them out of the counts and the
   * history (their tasks may come back), and tell the annotator. An expired token also
   * means the tasks that came with it are stale: fetch fresh ones, once. An answer the
   * recipe refused comes back on screen at once, to be fixed.
   */
  dropped(dropped) {
    const expired = dropped.filter((d) => d.error.expired).map((d) => d.answer._task_hash);
    const surplus = dropped.filter((d) => d.error.code === "surplus_answer");
    const rejected = dropped.filter((d) => d.error.rejected);
    const invalid = dropped.filter((d) => !d.error.expired && !d.error.rejected && d.error.code !== "surplus_answer");
    if (expired.length) {
      this.drops.expired += expired.length;
      this.renew(expired); // first: it needs to know which request brought them
    }
    const answers = new Set(dropped.map((d) => d.answer));
    const gone = this.history.filter((entry) => answers.has(entry.answer));
    this.history = this.history.filter((entry) => !answers.has(entry.answer));
    for (const { answer, error } of dropped) {
      this.counts[answer.answer] = Math.max(0, this.counts[answer.answer] - 1);
      if (!error.rejected) this.queue.forget(answer._task_hash); // a refused one stays: it comes back
    }
    this.saveCounts();
    if (rejected.length) this.bringBack(rejected, gone); // first: showing a task resets the hint line
    if (surplus.length) {
      const message = sentence(surplus[surplus.length - 1].error.message);
      const many = `${plural(surplus.length, "answer")} not needed: ${message}`;
      this.hint(surplus.length === 1 ? message : many, "info");
    }
    this.drops.invalid.push(...invalid.map((d) => d.error.message));
    this.renderSide();
  }

  /**
   * The recipe refused these answers (`422 recipe_rejected`): nothing of them was stored
   * and their tasks are still this session's, so resending them as they are is pointless
   * and dropping them would lose the annotator's work. Each task goes back to the front
   * of the queue, the first refused on screen now, with the recipe's message and the
   * annotator's edit (`entries`: their history entries, where the page still has them).
   */
  bringBack(rejected, entries) {
    if (this.current) {
      this.drafts.set(String(this.current.task._task_hash), this.current.view.snapshot());
      this.queue.unshift(this.current.task);
    }
    for (const { answer, error } of [...rejected].reverse()) {
      const key = String(answer._task_hash);
      const entry = entries.find((e) => e.answer === answer);
      // On screen or queued again (undo brought it back meanwhile): its newer edit stays.
      const task = this.queue.withdraw(key) ?? entry?.task ?? taskOf(answer);
      if (entry && !this.drafts.has(key)) this.drafts.set(key, entry.state);
      this.refusals.set(key, `${sentence(error.message)} You had ${WORDS[answer.answer]} it: answer it again.`);
      this.queue.unshift(task);
    }
    this.next();
  }

  /** Tokens expired: drop the stale tasks, the one on screen too, and get fresh ones. */
  renew(expiredHashes) {
    const upTo = this.queue.staleUpTo(expiredHashes);
    const onScreen = this.current && this.queue.isStale(this.current.task._task_hash, upTo);
    if (onScreen) this.queue.forget(this.current.task._task_hash);
    this.queue.renew(expiredHashes);
    if (onScreen) this.next();
  }

  dismissDrops() {
    this.drops = { expired: 0, invalid: [] };
    this.renderStatus();
  }

  async save() {
    this.hint("Saving…", "info");
    const saying = this.hintSeq;
    await this.outbox.flush({ force: true });
    if (this.hintSeq !== saying) return; // something was said meanwhile (a dropped answer): keep it
    const status = this.outbox.status();
    // The recipe refused the answer on screen: it is not saved, whatever the outbox says.
    const refused = this.current && this.refusals.has(String(this.current.task._task_hash));
    if (status.state === "saved" && !refused) this.hint("All answers saved.", "ok");
    else this.hint("");
  }

  // -- keyboard and page events --------------------------------------------------------

  bindPageEvents() {
    window.addEventListener("keydown", (event) => this.onKey(event));
    // Space activates a focused button on key-up; the keydown already answered.
    window.addEventListener("keyup", (event) => {
      if (event.key === " " && !isTyping(event.target)) event.preventDefault();
    });
    $("btn-accept").addEventListener("click", () => this.answer("accept"));
    $("btn-reject").addEventListener("click", () => this.answer("reject"));
    $("btn-ignore").addEventListener("click", () => this.answer("ignore"));
    $("btn-undo").addEventListener("click", () => this.undo());
    $("btn-save").addEventListener("click", () => this.save());
    $("held-retry").addEventListener("click", () => this.save());
    $("held-discard").addEventListener("click", () => this.outbox.discardHeld());
    $("drop-dismiss").addEventListener("click", () => this.dismissDrops());
    // Leaving: hand unsent answers to the browser (keepalive); hidden: send them now.
    window.addEventListener("pagehide", () => this.outbox.flushOnHide());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this.outbox.flush();
    });
    window.addEventListener("online", () => {
      this.outbox.cancelRetry();
      this.outbox.flush();
      if (!this.current) this.queue.fetch();
    });
    setInterval(() => {
      const { state } = this.outbox.status();
      if (state === "offline" || state === "busy" || state === "error") this.renderStatus();
    }, 1000);
  }

  onKey(event) {
    if (event.defaultPrevented || isTyping(event.target)) return;
    const mod = event.ctrlKey || event.metaKey;
    if (mod && event.key.toLowerCase() === "s") {
      event.preventDefault();
      this.save();
      return;
    }
    if (mod || event.altKey) return;
    const dialog = event.key === "?" ? $("help") : this.instructionsKey === eventKey(event) ? $("instructions") : null;
    if (dialog) {
      event.preventDefault();
      if (!event.repeat) toggleDialog(dialog);
      return;
    }
    if (document.querySelector("dialog[open]")) return;
    if (this.current && this.current.view.key(event)) {
      event.preventDefault();
      return;
    }
    const action = this.keymap.action(event);
    if (!action) {
      if (event.key === "Escape") this.hint("");
      return;
    }
    event.preventDefault();
    // A held-down key must not answer a run of tasks.
    if (event.repeat) return;
    if (action === "undo") this.undo();
    else this.answer(action);
  }

  // -- what the screen says ------------------------------------------------------------

  hint(message, tone = "") {
    clearTimeout(this.hintTimer);
    if (message) this.hintSeq += 1;
    const el = $("hint");
    el.textContent = message || this.defaultHint || "";
    el.dataset.tone = message ? tone : "";
    if (message && tone !== "warn") {
      this.hintTimer = setTimeout(() => this.hint(""), 4000);
    } else if (message) {
      this.hintTimer = setTimeout(() => this.hint(""), 8000);
    }
  }

  setProgress(data) {
    if (!data || typeof data.total !== "number") return;
    // `progress` is the server's share: answered / total, or the recipe's own progress.
    const share = typeof data.progress === "number" ? Math.min(Math.max(data.progress, 0), 1) : null;
    this.progress = { total: data.total, answered: Math.min(data.answered ?? 0, data.total), share };
    this.renderSide();
  }

  renderStatus() {
    if (!this.outbox) return;
    const status = this.outbox.status();
    renderStatus(status, this.history.length > 0 || this.counts.accept + this.counts.reject + this.counts.ignore > 0);
    renderNotice(status, this.drops);
  }

  renderSide() {
    if (this.progress) renderProgress(this.progress);
    const recent = this.historySize ? this.history.slice(-this.historySize) : [];
    renderSession(this.counts, recent.reverse().map((entry) => entry.answer));
    this.renderStatus();
  }

  restoreCounts() {
    try {
      const saved = JSON.parse(localStorage.getItem(this.countsKey) || "null");
      if (saved) for (const k of Object.keys(this.counts)) this.counts[k] = Number(saved[k]) || 0;
    } catch {
      // No counts is fine: they are a convenience, the ledger has the truth.
    }
  }

  saveCounts() {
    try {
      localStorage.setItem(this.countsKey, JSON.stringify(this.counts));
    } catch {
      // Storage full or disabled: counts simply restart on reload.
    }
  }

  /** A read-only look at the app's state, for tests and for debugging in the console. */
  inspect() {
    return {
      task: this.current ? String(this.current.task._task_hash) : null,
      queued: this.queue ? this.queue.length : 0,
      loading: Boolean(this.queue && this.queue.loading),
      requests: this.queue ? this.queue.requests : 0,
      outbox: this.outbox ? this.outbox.size : 0,
      unstored: this.outbox ? this.outbox.unstored() : 0,
      durable: Boolean(this.outbox && this.outbox.store.durable),
      status: this.outbox ? this.outbox.status().state : "starting",
      counts: { ...this.counts },
      activeLabel: this.activeLabel,
    };
  }
}

/** The task an answer was given to (the page no longer has it): the answer less its decision. */
function taskOf(answer) {
  const { answer: _decision, _timestamp, _decision_id, ...task } = answer;
  return task;
}

/** The project's `default_session` (from the recipe's get_session_id), or null. */
async function defaultSession() {
  try {
    const response = await fetch("/project");
    const project = response.ok ? await response.json() : {};
    return typeof project.default_session === "string" && SESSION_NAME.test(project.default_session)
      ? project.default_session
      : null;
  } catch {
    return null;
  }
}

function isTyping(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
  );
}

async function main() {
  const session = sessionFromUrl();
  if (!session) {
    // A recipe's get_session_id may name the session of a page opened without one.
    const suggested = await defaultSession();
    if (suggested) {
      const url = new URL(location.href);
      url.searchParams.set("session", suggested);
      location.replace(url);
      return;
    }
    askForSession();
    return;
  }
  const app = new App(session);
  window.quorum = { inspect: () => app.inspect() };
  app.start().catch((err) => {
    console.error(err);
    app.renderEmpty("Something went wrong", `${sentence(err.message)} Reload the page to try again.`, "error");
  });
}

main();

export { App };
