// What the project's config asks of the page: how many recent answers the side panel
// lists (`history_size`), which answer buttons it shows (`buttons`) and its colours
// (`custom_theme`). Prodigy's names and meanings. Each is read leniently: a value the
// page can't use is a console warning and the default, never a page that won't start.

import { setLabelColors } from "./colors.js";

export const HISTORY_SIZE = 8;
const HISTORY_MAX = 200; // the side panel is redrawn on every answer: keep it short
const BUTTONS = ["accept", "reject", "ignore", "undo"];

const warn = (message) => console.warn(`Quorum: ${message}`);

/** `history_size`: how many recent answers the side panel shows (0: no list). */
export function historySize(value) {
  if (value === undefined || value === null) return HISTORY_SIZE;
  if (!Number.isInteger(value) || value < 0) {
    warn(`config "history_size" must be a whole number from 0; ${JSON.stringify(value)} given, ${HISTORY_SIZE} used`);
    return HISTORY_SIZE;
  }
  return Math.min(value, HISTORY_MAX);
}

/**
 * `buttons`: the answer buttons to show, of accept, reject, ignore and undo (all by
 * default). As in Prodigy, a hidden button's action is still on its key.
 */
export function shownButtons(value) {
  if (value === undefined || value === null) return new Set(BUTTONS);
  if (!Array.isArray(value)) {
    warn(`config "buttons" must be a list like ["accept", "reject"]; all buttons shown`);
    return new Set(BUTTONS);
  }
  const unknown = value.filter((name) => !BUTTONS.includes(name));
  if (unknown.length) warn(`config "buttons": ${unknown.map((n) => JSON.stringify(n)).join(", ")} left out (known: ${BUTTONS.join(", ")})`);
  return new Set(value.filter((name) => BUTTONS.includes(name)));
}

/**
 * `custom_theme`: `labels` (`{"PERSON": "#ffd966"}`, the highlight colour of a label) and
 * `cardMaxWidth` (a number of pixels, or a CSS length). Other theme keys are ignored.
 */
export function applyTheme(theme, root = document.documentElement) {
  if (theme === undefined || theme === null) return;
  if (typeof theme !== "object" || Array.isArray(theme)) {
    warn(`config "custom_theme" must be an object like {"labels": {"PERSON": "#ffd966"}}; ignored`);
    return;
  }
  if (theme.labels !== undefined) {
    const colors = {};
    const ok = theme.labels && typeof theme.labels === "object" && !Array.isArray(theme.labels);
    if (!ok) warn(`custom_theme: "labels" must be an object like {"PERSON": "#ffd966"}; ignored`);
    const given = ok ? Object.entries(theme.labels) : [];
    for (const [label, color] of given) {
      if (typeof color === "string" && CSS.supports("color", color)) colors[label] = color;
      else warn(`custom_theme: ${JSON.stringify(color)} for label ${label} is not a CSS colour; left out`);
    }
    setLabelColors(colors);
  }
  if (theme.cardMaxWidth !== undefined) {
    const width = typeof theme.cardMaxWidth === "number" ? `${theme.cardMaxWidth}px` : String(theme.cardMaxWidth);
    // A length, not a keyword: `inherit` would be a valid width but no column size.
    if (/^(\d|\.\d|(calc|min|max|clamp)\()/i.test(width) && CSS.supports("width", width)) {
      root.style.setProperty("--card-max-width", width);
    } else {
      warn(`custom_theme: cardMaxWidth ${JSON.stringify(theme.cardMaxWidth)} is not a length; left out`);
    }
  }
}
