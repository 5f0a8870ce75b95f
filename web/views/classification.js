// The `classification` view: one label, one question — does it apply? Accept or reject.

import { paint } from "../colors.js";
import { h } from "../dom.js";
import { renderText } from "./text.js";

export function create(task, ctx) {
  const label = task.label ?? (ctx.labels.length === 1 ? ctx.labels[0] : null);
  const { block, problems } = renderText(task, ctx.labels);
  const body = h("div", { class: "classification" });
  if (label) {
    body.append(
      h(
        "div",
        { class: "question" },
        paint(h("span", { class: "label-chip", dataset: { label } }, String(label)), label, ctx.labels),
      ),
    );
  } else {
    problems.push('This task has no "label" to accept or reject; tell the project owner.');
  }
  body.append(block);
  return {
    body,
    toolbar: null,
    problems,
    hint: label
      ? `Does ${label} apply? ${ctx.keyLabel("accept")} accept · ${ctx.keyLabel("reject")} reject · ` +
        `${ctx.keyLabel("ignore")} skip`
      : "",
    extras: () => ({}),
    snapshot: () => ({}),
    key: () => false,
  };
}
