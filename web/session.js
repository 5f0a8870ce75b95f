// The session: who is annotating. It comes from `?session=NAME` and goes with every
// request; without a usable one, the page asks for a name and reloads with it.

import { h } from "./dom.js";

/** What the server accepts: 1–128 letters, digits, `_` or `-` (they become NATS subjects). */
export const SESSION_NAME = /^[A-Za-z0-9_-]{1,128}$/;

/** The session in the address, or null when there is none or it is not a valid name. */
export function sessionFromUrl() {
  const given = new URLSearchParams(location.search).get("session");
  return given && SESSION_NAME.test(given) ? given : null;
}

/** Replace the card with a small form for the session name. */
export function askForSession() {
  const given = new URLSearchParams(location.search).get("session");
  const $ = (id) => document.getElementById(id);
  const input = h("input", {
    id: "session-input",
    name: "session",
    autocomplete: "username",
    required: true,
    pattern: "[A-Za-z0-9_\\-]{1,128}",
    placeholder: "e.g. alex",
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
      ? h("p", { class: "problem" }, `“${given}” can't be a session name: use 1–128 letters, digits, _ or -.`)
      : h("p", { class: "muted" }, "Your answers are recorded under this session name (letters, digits, _ or -)."),
    h("label", { for: "session-input", class: "visually-hidden" }, "Session name"),
    h("div", { class: "session-row" }, input, h("button", { type: "submit", class: "action primary" }, "Start")),
  );
  $("card").classList.add("is-empty");
  $("card-body").replaceChildren(form);
  $("hint").textContent = "";
  input.focus();
}
