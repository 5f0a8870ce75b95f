// What the page says around the card: the status line, the notice, progress and the
// session panel, the answer buttons and their keys. Pure rendering: each function takes
// data and updates its elements.

import { h, kbd } from "./dom.js";
import { ACTIONS, keyLabel } from "./keymap.js";

const ICONS = { accept: "✓", reject: "✗", ignore: "⊘" };
const $ = (id) => document.getElementById(id);

export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** A server message as a sentence of its own: capital first letter, full stop. */
export function sentence(text) {
  const s = String(text || "").trim();
  if (!s) return s;
  return `${s[0].toUpperCase()}${s.slice(1)}${/[.!?]$/.test(s) ? "" : "."}`;
}

const secondsUntil = (at) => (at ? Math.max(1, Math.ceil((at - Date.now()) / 1000)) : 0);

/** The quiet status line in the top bar, from `Outbox.status()`. */
export function renderStatus(status, answeredAny) {
  const el = $("status");
  el.dataset.state = status.state;
  const waiting = plural(status.waiting, "answer");
  $("status-text").textContent = {
    saved: answeredAny ? "All answers saved" : "Ready",
    waiting: `${waiting} to send`,
    saving: `Saving ${waiting}…`,
    offline: `offline — ${waiting} waiting`,
    busy: `server busy, retrying — ${waiting} waiting`,
    error: `server error — ${waiting} waiting`,
    held: `${plural(status.held, "answer")} not accepted`,
  }[status.state];
  const retry = secondsUntil(status.retryAt);
  el.title = ["offline", "busy", "error"].includes(status.state)
    ? `${sentence(status.error)} Retrying${retry ? ` in ${retry} s` : " now"}; Ctrl+S retries at once.`
    : "Answers are sent in batches; Ctrl+S sends them now.";
}

/**
 * The notice for what needs the annotator's attention: a server error, refused answers
 * that wait for a decision, answers that were dropped (`drops`: `{expired, invalid}`,
 * a count and the server's messages), in that order.
 */
export function renderNotice(status, drops) {
  const notice = $("notice");
  $("held-actions").hidden = true;
  $("drop-actions").hidden = true;
  if (status.state === "error") {
    const retry = secondsUntil(status.retryAt);
    $("notice-title").textContent = "The server could not take your answers";
    $("notice-text").textContent =
      `${sentence(status.error)} Your ${plural(status.waiting, "answer")} stay in this browser and ` +
      `are sent again automatically${retry ? ` in ${retry} s` : ""}. Keep annotating.`;
    notice.dataset.tone = "warn";
  } else if (status.held) {
    const one = status.held === 1;
    $("notice-title").textContent = `The server refused ${plural(status.held, "answer")}`;
    $("notice-text").textContent =
      `${sentence(status.heldMessage)} ${one ? "The answer stays" : "The answers stay"} in this ` +
      `browser: Retry now sends ${one ? "it" : "them"} again, Discard lets ` +
      `${one ? "it go and its task goes" : "them go and their tasks go"} back to the queue.`;
    $("held-actions").hidden = false;
    notice.dataset.tone = "error";
  } else if (drops.expired || drops.invalid.length) {
    renderDrops(drops);
    $("drop-actions").hidden = false;
    notice.dataset.tone = "warn";
  } else {
    notice.hidden = true;
    return;
  }
  notice.hidden = false;
}

/**
 * Above the card: why the recipe refused the answer to the task on screen (`null`: it
 * did not). An alert, so a screen reader says it as the task comes back.
 */
export function renderRefusal(text) {
  $("refusal-text").textContent = text || "";
  $("refusal").hidden = !text;
}

/** What was dropped: expired answers to redo, and answers the server can never accept. */
function renderDrops({ expired, invalid }) {
  const lines = [];
  if (expired) {
    lines.push(
      `${expired === 1 ? "It was" : "They were"} given on tasks handed out too long ago, so the server ` +
        `no longer takes ${expired === 1 ? "it" : "them"}. Fresh tasks are loaded; ` +
        `${expired === 1 ? "its task comes" : "their tasks come"} back later to be answered again.`,
    );
  }
  if (invalid.length) {
    lines.push(
      `The server refused ${plural(invalid.length, "answer")} for good, and ` +
        `${invalid.length === 1 ? "it was" : "they were"} dropped: ${sentence(invalid[invalid.length - 1])}`,
    );
  }
  $("notice-title").textContent = expired
    ? `${plural(expired, "answer")} expired and must be redone`
    : `${plural(invalid.length, "answer")} dropped`;
  $("notice-text").textContent = lines.join(" ");
}

/** The dataset's progress (everyone's answers), from any API response. */
export function renderProgress({ answered, total, share = null }) {
  share = share ?? (total ? answered / total : 0);
  $("progress-fill").style.width = `${(share * 100).toFixed(1)}%`;
  $("progressbar").setAttribute("aria-valuenow", String(Math.round(share * 100)));
  $("progress-text").textContent = `${answered.toLocaleString()} / ${total.toLocaleString()}`;
  $("progress-share").textContent = `${Math.floor(share * 100)}%`;
}

/** This session's counts and its most recent answers (newest first). */
export function renderSession(counts, recent) {
  const { accept, reject, ignore } = counts;
  $("count-accept").textContent = accept;
  $("count-reject").textContent = reject;
  $("count-ignore").textContent = ignore;
  $("count-total").textContent = accept + reject + ignore;
  $("history").replaceChildren(
    ...recent.map((answer) =>
      h(
        "li",
        { class: `history-item ${answer.answer}` },
        h("span", { class: "history-icon", "aria-label": answer.answer }, ICONS[answer.answer]),
        h("span", { class: "history-text" }, summary(answer)),
      ),
    ),
  );
  $("history-empty").hidden = recent.length > 0;
}

function summary(answer) {
  const text = typeof answer.text === "string" && answer.text.trim() ? answer.text.trim() : "(no text)";
  const chars = [...text]; // code points: never cut an emoji in half
  const short = chars.length > 70 ? `${chars.slice(0, 69).join("")}…` : text;
  if (Array.isArray(answer.spans) && answer.spans.length) {
    return `${short} — ${answer.spans.map((s) => s.label).join(", ")}`;
  }
  if (Array.isArray(answer.accept) && answer.accept.length) return `${short} — ${answer.accept.join(", ")}`;
  return short;
}

/**
 * The answer buttons and the help's key table, from the effective keys (`keymap`, a
 * `Keymap`): each button shows its first key and is hidden unless `shown` has it; the
 * help lists every key, and `instructionsKey` (null: none) for the instructions.
 */
export function renderActions(keymap, shown, instructionsKey) {
  for (const action of ACTIONS) {
    const button = $(`btn-${action}`);
    button.querySelector("kbd").textContent = keymap.label(action);
    button.setAttribute("aria-keyshortcuts", keymap.aria(action));
    button.hidden = !shown.has(action);
    const keys = keymap.keys[action].map((key) => kbd(keyLabel(key)));
    $(`keys-${action}`).replaceChildren(...keys.flatMap((el, i) => (i ? [" ", el] : [el])));
  }
  const row = $("keys-instructions");
  row.hidden = !instructionsKey;
  if (instructionsKey) row.querySelector("kbd").textContent = keyLabel(instructionsKey);
}
