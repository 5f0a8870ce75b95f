// The views this app has, by `view_id`. A task's own `_view_id` wins over the project's.

import * as choice from "./choice.js";
import * as classification from "./classification.js";
import * as ner from "./ner.js";
import * as text from "./text.js";

export const VIEWS = { ner_manual: ner, classification, choice, text };

/** Create the view for `task`; an unknown view falls back to read-only text, with a message. */
export function createView(task, ctx) {
  const viewId = typeof task._view_id === "string" && task._view_id ? task._view_id : ctx.project.view_id;
  const view = VIEWS[viewId];
  if (view) return { viewId, ...view.create(task, ctx) };
  const fallback = text.create(task, ctx);
  fallback.problems.unshift(
    `This task asks for the view “${viewId}”, which this app cannot show ` +
      `(it has ${Object.keys(VIEWS).join(", ")}). The text is shown read-only below: you can ` +
      "still accept, reject or ignore it, and tell the project owner.",
  );
  return { viewId: "text", ...fallback };
}
