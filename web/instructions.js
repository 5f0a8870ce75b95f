// The project's instructions, in a dialog that the top bar's button (or `i`) opens.
//
// The server sends them as `{"format": "html" | "markdown", "text": …}`, read from the
// recipe's file; datasets from before that carry a plain string, read as Markdown. The
// HTML is the project owner's own file, so it is shown as written, less what could run
// code or reach beyond the dialog (scripts, `on…` handlers, `javascript:` addresses,
// styles and frames); Markdown goes through web/markdown.js, which never parses HTML.

import { renderMarkdown } from "./markdown.js";

/** Elements left out of HTML instructions: they run code or change the whole page. */
const DROPPED = "script, style, link, meta, base, iframe, frame, frameset, object, embed, noscript, template";
/** Attributes that take an address, checked for schemes that run code. */
const URL_ATTRIBUTES = new Set(["href", "src", "srcset", "action", "formaction", "xlink:href", "poster", "background"]);
const SCRIPT_URL = /^(?:javascript|vbscript):/i;
/** A `data:` image is fine; a `data:` page to navigate to is not. */
const unsafeUrl = (name, address) =>
  SCRIPT_URL.test(address) || (/href|action$/.test(name) && /^data:/i.test(address));

/** `{format, text}` from the config value, or null when there is nothing to show. */
export function instructionsFrom(value) {
  if (typeof value === "string") return value.trim() ? { format: "markdown", text: value } : null;
  if (!value || typeof value !== "object" || typeof value.text !== "string" || !value.text.trim()) return null;
  if (value.format !== "html" && value.format !== "markdown") {
    console.warn(`Quorum: instructions format ${JSON.stringify(value.format)} is unknown; shown as Markdown`);
  }
  return { format: value.format === "html" ? "html" : "markdown", text: value.text };
}

/** The instructions as a fragment for the dialog; Markdown headings start at `<h{top}>`. */
export function renderInstructions({ format, text }, { top = 3 } = {}) {
  return format === "html" ? sanitizedHtml(text) : renderMarkdown(text, { top });
}

/** The owner's HTML, parsed in a document of its own (nothing in it runs there), cleaned. */
export function sanitizedHtml(text) {
  const doc = new DOMParser().parseFromString(String(text), "text/html");
  for (const el of doc.querySelectorAll(DROPPED)) el.remove();
  for (const el of doc.body.querySelectorAll("*")) {
    for (const { name, value } of [...el.attributes]) {
      const lower = name.toLowerCase();
      // Browsers ignore control characters and spaces inside a scheme: so does this check.
      const address = value.replace(/[\u0000-\u0020]/g, "");
      if (lower.startsWith("on") || lower === "srcdoc" || (URL_ATTRIBUTES.has(lower) && unsafeUrl(lower, address))) {
        el.removeAttribute(name);
      }
    }
    // Links leave the annotation page alone: they open in a tab of their own.
    if (el.tagName === "A" && el.hasAttribute("href")) {
      el.setAttribute("target", "_blank");
      el.setAttribute("rel", "noopener noreferrer");
    }
  }
  const fragment = document.createDocumentFragment();
  fragment.append(...[...doc.body.childNodes].map((node) => document.adoptNode(node)));
  return fragment;
}

/**
 * Fill the dialog and show the top bar's button, when the project has instructions.
 * Returns whether it has; the dialog itself opens and closes with `toggleDialog`.
 */
export function setUpInstructions(value) {
  const instructions = instructionsFrom(value);
  const button = document.getElementById("instructions-button");
  if (!instructions) return false;
  const body = document.getElementById("instructions-body");
  body.dataset.format = instructions.format;
  body.replaceChildren(renderInstructions(instructions));
  button.hidden = false;
  button.addEventListener("click", () => toggleDialog(document.getElementById("instructions")));
  return true;
}

/** Open a modal dialog (closing any other first), or close it if it is open. */
export function toggleDialog(dialog) {
  if (dialog.open) {
    dialog.close();
    return;
  }
  for (const other of document.querySelectorAll("dialog[open]")) other.close();
  dialog.showModal();
  // A long text scrolls in its own region: give it the focus, so arrow keys scroll it.
  const region = dialog.querySelector("[data-scroll]");
  if (region) region.focus({ preventScroll: true });
}
