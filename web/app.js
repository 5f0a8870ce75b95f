// The annotation app: one question at a time, everything on the keyboard.
//
// It talks only to the feed API (api.js). Answers go to the outbox (outbox.js), which
// sends them in the background; the next task comes from the queue (queue.js), which
// is refilled before it runs out. A key press therefore never waits on the network:
// the next question is rendered in the same event handler. The page keeps nothing a
// reload could not rebuild, except unsent answers (the outbox, in localStorage).

import { Api } from "./api.js";
import { h } from "./dom.js";
import { Outbox } from "./outbox.js";
import { TaskQueue } from "./queue.js";
import { createView } from "./views/index.js";

const SESSION_NAME = /^[A-Za-z0-9_-]{1,128}$/;
const HISTORY_LIMIT = 50;
const ICONS = { accept: "✓", reject: "✗", ignore: "⊘" };
const WORDS = { accept: "accepted", reject: "rejected", ignore: "ignored" };

const $ = (id) => document.getElementById(id);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
/** A server message as a sentence: capital first letter, closing full stop. */
const sentence = (text) => {
  const s = String(text || "").trim();
  return s ? `${s[0].toUpperCase()}${s.slice(1)}${/[.!?]$/.test(s) ? "" : "."}` : "";
};

class App {
  constructor(session) {
    this.session = session;
    this.api = new Api(session);
    this.project = null;
    this.current = null; // {task, view}
    this.history = []; // [{task, answer, state}], oldest first
    this.drafts = new Map(); // task hash -> edit state of a task put back by undo
    this.counts = { accept: 0, reject: 0, ignore: 0 };
    this.activeLabel = null;
    this.progress = null;
    this.hintTimer = null;
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
    if (typeof this.project.instructions === "string" && this.project.instructions.trim()) {
      $("instructions-text").textContent = this.project.instructions;
      $("instructions").hidden = false;
    }
    const labels = this.labels();
    if (labels.length === 1) this.activeLabel = labels[0];
    const batchSize = Number(this.project.batch_size) || 10;
    this.countsKey = `quorum:counts:${dataset}:${this.session}`;
    this.restoreCounts();
    this.outbox = new Outbox(this.api, {
      batchSize,
      instant: Boolean(this.project.instant_submit),
      storageKey: `quorum:outbox:${dataset}:${this.session}`,
      onChange: () => this.renderStatus(),
      onSaved: (result) => this.setProgress(result),
    });
    this.queue = new TaskQueue(this.api, {
      batchSize,
      skip: (hash) => this.outbox.has(hash) || this.history.some((e) => String(e.task._task_hash) === hash),
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

  async loadProject() {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.api.project();
      } catch (err) {
        const wait = Math.min(2000 * 2 ** attempt, 15000);
        this.renderEmpty(
          `Can't load the project: ${err.message}`,
          `Trying again in ${Math.round(wait / 1000)} s. If this goes on, check that the Quorum server is running.`,
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
    if (queue.error && !queue.loading) {
      this.renderEmpty(
        `Can't get new tasks: ${queue.error.message}`,
        "Trying again on its own. Your answers are kept in this browser until the server has them.",
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
    const answer = { ...task, ...view.extras(), answer: decision };
    this.outbox.put(answer);
    this.history.push({ task, answer, state: view.snapshot() });
    if (this.history.length > HISTORY_LIMIT) this.history.shift();
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

  async save() {
    this.hint("Saving…", "info");
    await this.outbox.flush({ force: true });
    const status = this.outbox.status();
    if (status.state === "saved") this.hint("All answers saved.", "ok");
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
      if (state === "offline" || state === "error") this.renderStatus();
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
    const help = $("help");
    if (event.key === "?") {
      event.preventDefault();
      if (help.open) help.close();
      else help.showModal();
      return;
    }
    if (help.open) return;
    if (this.current && this.current.view.key(event)) {
      event.preventDefault();
      return;
    }
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const action = { a: "accept", x: "reject", " ": "ignore", Backspace: "undo", Delete: "undo" }[key];
    if (!action) {
      if (key === "Escape") this.hint("");
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
    this.progress = { total: data.total, answered: Math.min(data.answered ?? 0, data.total) };
    this.renderSide();
  }

  renderStatus() {
    if (!this.outbox) return;
    const status = this.outbox.status();
    const el = $("status");
    el.dataset.state = status.state;
    const waiting = plural(status.waiting, "answer");
    const retry = status.retryAt ? Math.max(1, Math.ceil((status.retryAt - Date.now()) / 1000)) : 0;
    const text = {
      saved: this.history.length || this.counts.accept ? "All answers saved" : "Ready",
      waiting: `${waiting} to send`,
      saving: `Saving ${waiting}…`,
      offline: `offline — ${waiting} waiting`,
      error: `server error — ${waiting} waiting`,
      held: `${plural(status.held, "answer")} not accepted`,
    }[status.state];
    $("status-text").textContent = text;
    el.title =
      status.state === "offline" || status.state === "error"
        ? `${sentence(status.error)} Retrying${retry ? ` in ${retry} s` : " now"}; press Ctrl+S to retry at once.`
        : "Answers are sent in batches; Ctrl+S sends them now.";

    const notice = $("notice");
    if (status.state === "error") {
      $("notice-title").textContent = "The server could not take your answers";
      $("notice-text").textContent =
        `${sentence(status.error)} Your ${waiting} stay in this browser and are sent again ` +
        `automatically${retry ? ` in ${retry} s` : ""}. Keep annotating.`;
      $("held-actions").hidden = true;
      notice.dataset.tone = "warn";
      notice.hidden = false;
    } else if (status.held) {
      $("notice-title").textContent = `The server refused ${plural(status.held, "answer")}`;
      const one = status.held === 1;
      $("notice-text").textContent =
        `${sentence(status.heldMessage)} ${one ? "The answer stays" : "The answers stay"} in this ` +
        `browser: Retry now sends ${one ? "it" : "them"} again, Discard lets ` +
        `${one ? "it go and its task goes" : "them go and their tasks go"} back to the queue.`;
      $("held-actions").hidden = false;
      notice.dataset.tone = "error";
      notice.hidden = false;
    } else {
      notice.hidden = true;
    }
  }

  renderSide() {
    const p = this.progress;
    if (p) {
      const share = p.total ? p.answered / p.total : 0;
      $("progress-fill").style.width = `${(share * 100).toFixed(1)}%`;
      $("progressbar").setAttribute("aria-valuenow", String(Math.round(share * 100)));
      $("progress-text").textContent = `${p.answered.toLocaleString()} / ${p.total.toLocaleString()}`;
      $("progress-share").textContent = `${Math.floor(share * 100)}%`;
    }
    const { accept, reject, ignore } = this.counts;
    $("count-accept").textContent = accept;
    $("count-reject").textContent = reject;
    $("count-ignore").textContent = ignore;
    $("count-total").textContent = accept + reject + ignore;
    const recent = this.history.slice(-8).reverse();
    $("history").replaceChildren(
      ...recent.map((entry) => {
        const decision = entry.answer.answer;
        return h(
          "li",
          { class: `history-item ${decision}` },
          h("span", { class: "history-icon", "aria-label": decision }, ICONS[decision]),
          h("span", { class: "history-text" }, summary(entry.answer)),
        );
      }),
    );
    $("history-empty").hidden = recent.length > 0;
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
      status: this.outbox ? this.outbox.status().state : "starting",
      counts: { ...this.counts },
      activeLabel: this.activeLabel,
    };
  }
}

function summary(answer) {
  const text = typeof answer.text === "string" && answer.text.trim() ? answer.text.trim() : "(no text)";
  const short = text.length > 70 ? `${text.slice(0, 69)}…` : text;
  if (Array.isArray(answer.spans) && answer.spans.length) {
    return `${short} — ${answer.spans.map((s) => s.label).join(", ")}`;
  }
  if (Array.isArray(answer.accept) && answer.accept.length) return `${short} — ${answer.accept.join(", ")}`;
  return short;
}

function isTyping(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
  );
}

/** No usable `?session=`: ask for a name, then reload with it. */
function askForSession(given) {
  const card = $("card");
  card.classList.add("is-empty");
  $("card-body").replaceChildren();
  const input = h("input", {
    id: "session-input",
    name: "session",
    autocomplete: "username",
    required: true,
    pattern: "[A-Za-z0-9_\\-]{1,128}",
    placeholder: "e.g. alex",
    value: given && SESSION_NAME.test(given) ? given : null,
  });
  const form = h(
    "form",
    {
      class: "session-form",
      onsubmit: (event) => {
        event.preventDefault();
        const name = input.value.trim();
        if (!SESSION_NAME.test(name)) return;
        const url = new URL(location.href);
        url.searchParams.set("session", name);
        location.assign(url);
      },
    },
    h("p", { class: "empty-title" }, "Who is annotating?"),
    given
      ? h(
          "p",
          { class: "problem" },
          `“${given}” can't be a session name: use 1–128 letters, digits, _ or -.`,
        )
      : h("p", { class: "muted" }, "Your answers are recorded under this session name (letters, digits, _ or -)."),
    h("label", { for: "session-input", class: "visually-hidden" }, "Session name"),
    h("div", { class: "session-row" }, input, h("button", { type: "submit", class: "action primary" }, "Start")),
  );
  $("card-body").append(form);
  $("hint").textContent = "";
  for (const id of ["btn-accept", "btn-reject", "btn-ignore"]) $(id).disabled = true;
  input.focus();
}

function main() {
  const session = new URLSearchParams(location.search).get("session");
  if (!session || !SESSION_NAME.test(session)) {
    askForSession(session);
    return;
  }
  const app = new App(session);
  window.quorum = { inspect: () => app.inspect() };
  app.start().catch((err) => {
    console.error(err);
    app.renderEmpty(`Something went wrong: ${err.message}`, "Reload the page to try again.", "error");
  });
}

main();

export { App };
