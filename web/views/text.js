// The `text` view: the task's text, read-only, with any pre-set highlights. Also the
// fallback for a view this app does not have, and the text block other views reuse.

import { paint } from "../colors.js";
import { h } from "../dom.js";
import { Offsets } from "./offsets.js";
import { checkSpans, textProblems } from "./spans.js";

/** The text as a block, pre-set spans highlighted (read-only). Returns the element and problems. */
export function renderText(task, labels) {
  const text = typeof task.text === "string" ? task.text : "";
  const { spans, problems } = checkSpans(task.spans, new Offsets(text));
  const block = h("div", { class: "text", dir: "auto" });
  let at = 0;
  for (const span of spans) {
    if (span.start > at) block.append(text.slice(at, span.start));
    const mark = h(
      "mark",
      { class: "span readonly", dataset: { label: span.label } },
      text.slice(span.start, span.end),
      h("span", { class: "span-label" }, span.label),
    );
    block.append(paint(mark, span.label, labels));
    at = span.end;
  }
  if (at < text.length) block.append(text.slice(at));
  return { block, problems: [...textProblems(task), ...problems] };
}

/** Create the view for one task (the interface every view implements). */
export function create(task, ctx) {
  const { block, problems } = renderText(task, ctx.labels);
  return {
    body: block,
    toolbar: null,
    problems,
    hint: "",
    extras: () => ({}),
    snapshot: () => ({}),
    key: () => false,
  };
}
