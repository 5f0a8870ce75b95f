// The `choice` view: pick options for the text, single or multiple.
//
// With a single exclusive choice and `choice_auto_accept`, picking an option answers
// the task at once, as in Prodigy. Number keys 1–9 pick options.

import { h, kbd } from "../dom.js";
import { renderText } from "./text.js";

export function create(task, ctx) {
  const single = ctx.project.choice_style === "single";
  const autoAccept = single && Boolean(ctx.project.choice_auto_accept);
  const { block, problems } = renderText(task, ctx.labels);
  const options = Array.isArray(task.options)
    ? task.options.filter((o) => o && o.id !== undefined && o.id !== null)
    : [];
  if (!options.length) {
    problems.push("This task has no options to choose from. Skip it with space and tell the project owner.");
  }
  const known = new Set(options.map((o) => String(o.id)));
  const initial = ctx.state?.accept ?? task.accept;
  let chosen = Array.isArray(initial) ? initial.filter((id) => known.has(String(id))) : [];

  const buttons = options.map((option, index) =>
    h(
      "button",
      {
        type: "button",
        class: "option",
        role: single ? "radio" : "checkbox",
        "aria-checked": "false",
        dataset: { id: String(option.id) },
        onclick: () => pick(index),
      },
      index < 9 ? kbd(String(index + 1)) : h("span", { class: "kbd-space" }),
      h("span", { class: "option-mark", "aria-hidden": "true" }),
      h("span", { class: "option-text" }, String(option.text ?? option.id)),
    ),
  );
  const list = h(
    "div",
    { class: "options", role: single ? "radiogroup" : "group", "aria-label": "Options" },
    buttons,
  );

  function sync() {
    buttons.forEach((button, i) => {
      const on = chosen.some((id) => String(id) === String(options[i].id));
      button.setAttribute("aria-checked", on ? "true" : "false");
    });
  }

  function pick(index) {
    const option = options[index];
    if (!option) return;
    const on = chosen.some((id) => String(id) === String(option.id));
    if (single) chosen = on && !autoAccept ? [] : [option.id];
    else chosen = on ? chosen.filter((id) => String(id) !== String(option.id)) : [...chosen, option.id];
    sync();
    if (autoAccept) ctx.submit("accept");
  }

  sync();
  const accept = ctx.keyLabel("accept");
  const hint = autoAccept
    ? "Press a number (or click) to choose; that answers the task"
    : single
      ? `Press a number to choose one option, then ${accept} to accept`
      : `Press numbers to choose any options, then ${accept} to accept`;
  return {
    body: h("div", { class: "choice" }, block, list),
    toolbar: null,
    problems,
    hint: options.length ? hint : "",
    // Keep the option order of the task, whatever order they were clicked in.
    extras: () => ({
      accept: options.filter((o) => chosen.some((id) => String(id) === String(o.id))).map((o) => o.id),
    }),
    snapshot: () => ({ accept: [...chosen] }),
    key(event) {
      if (/^[1-9]$/.test(event.key) && Number(event.key) <= options.length) {
        pick(Number(event.key) - 1);
        return true;
      }
      return false;
    },
  };
}
