// The `ner_manual` view: highlight entity spans on a pre-tokenised text.
//
// Selections snap to tokens: press on a word and drag to another, or double-click one
// word. With a label chosen (number keys 1–9 or the label bar) the highlight gets it at
// once; with none chosen yet, the selection waits for a number key. Clicking a highlight
// removes it. A selection that would overlap a highlight is refused with a hint.

import { paint } from "../colors.js";
import { h, kbd } from "../dom.js";
import { Offsets } from "./offsets.js";
import { checkSpans, textProblems, tokensFor } from "./spans.js";

const HINT = "Drag across words to highlight them · double-click one word · click a highlight to remove it";

export function create(task, ctx) {
  const labels = ctx.labels;
  const text = typeof task.text === "string" ? task.text : "";
  // Offsets inside this view are UTF-16 units; the task and the answer count code points.
  const offsets = new Offsets(text);
  const { tokens, made } = tokensFor(task, offsets);
  const problems = textProblems(task);
  const initial = ctx.state ? ctx.state.spans : task.spans;
  const checked = checkSpans(initial, offsets, tokens);
  problems.push(...checked.problems);
  let spans = checked.spans;
  let pending = null; // {lo, hi}: a selection waiting for its label
  let drag = null; // {anchor, head}
  let releases = 0; // pointer releases so far, to tell a double-click's own clicks apart
  let removedAtRelease = -10;

  if (!labels.length) {
    problems.push("This project has no labels to highlight with. You can still accept, reject or ignore.");
  }
  const container = h("div", { class: "text ner", dir: "auto", lang: ctx.project.lang || null });
  /** @type {HTMLElement[]} */
  let tokenEls = [];

  // -- the label bar -----------------------------------------------------------------
  const labelButtons = labels.map((label, i) =>
    paint(
      h(
        "button",
        {
          type: "button",
          class: "label",
          "aria-pressed": "false",
          dataset: { label },
          onclick: () => chooseLabel(label),
        },
        i < 9 ? kbd(String(i + 1)) : null,
        h("span", { class: "swatch", "aria-hidden": "true" }),
        label,
      ),
      label,
      labels,
    ),
  );
  const toolbar = h("div", { class: "labelbar", role: "toolbar", "aria-label": "Labels" }, labelButtons);

  function syncLabels() {
    const active = ctx.activeLabel();
    for (const button of labelButtons) {
      button.setAttribute("aria-pressed", button.dataset.label === active ? "true" : "false");
    }
  }

  // -- rendering -----------------------------------------------------------------------
  const tokenEl = (i) => {
    const t = tokens[i];
    const el = h("span", { class: "tok", dataset: { i: String(i) } }, text.slice(t.start, t.end));
    if (!text.slice(t.start, t.end).trim()) el.classList.add("ws");
    tokenEls[i] = el;
    return el;
  };
  const gap = (i) => (i + 1 < tokens.length ? text.slice(tokens[i].end, tokens[i + 1].start) : text.slice(tokens[i].end));

  function render() {
    tokenEls = [];
    container.replaceChildren();
    if (tokens.length && tokens[0].start > 0) container.append(text.slice(0, tokens[0].start));
    const startsAt = new Map(spans.map((s) => [s.token_start, s]));
    for (let i = 0; i < tokens.length; ) {
      const span = startsAt.get(i);
      if (!span) {
        container.append(tokenEl(i), gap(i));
        i += 1;
        continue;
      }
      const mark = h("mark", {
        class: "span",
        title: `${span.label} — click to remove`,
        dataset: { label: span.label, start: String(span.start), end: String(span.end) },
      });
      for (let j = span.token_start; j <= span.token_end; j++) {
        mark.append(tokenEl(j));
        if (j < span.token_end) mark.append(gap(j));
      }
      mark.append(h("span", { class: "span-label", "aria-hidden": "true" }, span.label));
      container.append(paint(mark, span.label, labels), gap(span.token_end));
      i = span.token_end + 1;
    }
    if (pending) {
      for (let j = pending.lo; j <= pending.hi; j++) tokenEls[j].classList.add("pending");
    }
  }

  // -- selecting -----------------------------------------------------------------------
  const range = (a, b) => {
    let lo = Math.min(a, b);
    let hi = Math.max(a, b);
    // A highlight never starts or ends on a whitespace token.
    while (lo < hi && tokenEls[lo]?.classList.contains("ws")) lo += 1;
    while (hi > lo && tokenEls[hi]?.classList.contains("ws")) hi -= 1;
    return { lo, hi };
  };
  const clashWith = ({ lo, hi }) => spans.find((s) => s.token_start <= hi && lo <= s.token_end);
  const spanOf = (i) => spans.find((s) => s.token_start <= i && i <= s.token_end);
  const quote = ({ lo, hi }) => text.slice(tokens[lo].start, tokens[hi].end);

  function paintDrag() {
    for (const el of tokenEls) el.classList.remove("selecting", "refused");
    if (!drag) return;
    const r = range(drag.anchor, drag.head);
    const cls = clashWith(r) ? "refused" : "selecting";
    for (let j = r.lo; j <= r.hi; j++) tokenEls[j].classList.add(cls);
  }

  function select(a, b) {
    const r = range(a, b);
    if (tokenEls[r.lo].classList.contains("ws")) return;
    const clash = clashWith(r);
    if (clash) {
      ctx.hint(
        `Highlights can't overlap: “${quote(r)}” runs into ${clash.label} “${text.slice(clash.start, clash.end)}”. ` +
          "Click that highlight to remove it first.",
        "warn",
      );
      const mark = container.querySelector(`mark[data-start="${clash.start}"]`);
      if (mark) {
        mark.classList.remove("conflict");
        void mark.offsetWidth; // restart the animation
        mark.classList.add("conflict");
      }
      return;
    }
    const label = ctx.activeLabel();
    if (label) {
      add(r, label);
    } else {
      pending = r;
      render();
      ctx.hint(`Now pick a label for “${quote(r)}”: press 1–${Math.min(labels.length, 9)}`, "info");
    }
  }

  function add(r, label) {
    spans = [
      ...spans,
      { start: tokens[r.lo].start, end: tokens[r.hi].end, token_start: r.lo, token_end: r.hi, label },
    ].sort((x, y) => x.start - y.start);
    pending = null;
    render();
    ctx.hint("");
  }

  function remove(span) {
    spans = spans.filter((s) => s !== span);
    removedAtRelease = releases;
    render();
    ctx.hint(`Removed ${span.label} “${text.slice(span.start, span.end)}”`, "info");
  }

  /** The highlights as an answer carries them: code point offsets, in text order. */
  function answerSpans() {
    return spans.map(({ start, end, token_start, token_end, label }) =>
      offsets.inPoints({ start, end, token_start, token_end, label }),
    );
  }

  function chooseLabel(label) {
    ctx.setActiveLabel(label);
    syncLabels();
    if (pending) add(pending, label);
  }

  const tokenAt = (x, y) => {
    const el = document.elementFromPoint(x, y);
    const tok = el && el.closest ? el.closest(".tok") : null;
    return tok && container.contains(tok) ? Number(tok.dataset.i) : null;
  };

  container.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    const tok = event.target.closest(".tok");
    if (!tok) return;
    event.preventDefault(); // no native text selection, no focus jump
    const i = Number(tok.dataset.i);
    drag = { anchor: i, head: i };
    container.setPointerCapture(event.pointerId);
  });
  container.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const i = tokenAt(event.clientX, event.clientY);
    if (i !== null && i !== drag.head) {
      drag.head = i;
      paintDrag();
    }
  });
  container.addEventListener("pointerup", (event) => {
    if (!drag) return;
    releases += 1;
    const i = tokenAt(event.clientX, event.clientY);
    if (i !== null) drag.head = i;
    const { anchor, head } = drag;
    drag = null;
    paintDrag();
    if (anchor !== head) {
      select(anchor, head);
      return;
    }
    const span = spanOf(anchor);
    if (span) remove(span);
    else if (pending) {
      pending = null;
      render();
      ctx.hint("");
    }
  });
  container.addEventListener("pointercancel", () => {
    drag = null;
    paintDrag();
  });
  container.addEventListener("dblclick", (event) => {
    // Pointer capture makes the container the target: find the word under the pointer.
    // Its first click removed a highlight: a double-click on a highlight just removes it.
    const i = tokenAt(event.clientX, event.clientY);
    if (i === null || releases - removedAtRelease <= 1) return;
    if (!spanOf(i)) select(i, i);
  });

  render();
  syncLabels();
  const body = text.trim() ? container : h("div", { class: "text empty" });
  return {
    body,
    toolbar: labels.length ? toolbar : null,
    problems,
    hint: !text.trim() ? "" : made ? `${HINT} (this task came without tokens: words split here)` : HINT,
    extras: () => ({
      spans: answerSpans(),
      ...(made ? { tokens: tokens.map((t) => offsets.inPoints(t)) } : {}),
    }),
    snapshot: () => ({ spans: answerSpans() }),
    key(event) {
      if (/^[1-9]$/.test(event.key) && Number(event.key) <= labels.length) {
        chooseLabel(labels[Number(event.key) - 1]);
        return true;
      }
      if (event.key === "Escape" && pending) {
        pending = null;
        render();
        ctx.hint("");
        return true;
      }
      return false;
    },
  };
}
