// Which key answers how: the defaults, with the project's `keymap` over them.
//
// A Prodigy-style keymap (`{"accept": ["j"], "undo": ["u"]}`) replaces the keys of the
// actions it names. It is read leniently, because a typo in a recipe's config must not
// cost the annotator the page: an unknown action or key name, or a key the page keeps
// for itself, is a console warning and is left out; a key bound to two actions gives
// both their default keys back, with a warning.

export const ACTIONS = ["accept", "reject", "ignore", "undo"];

/** Keys as `KeyboardEvent.key` says them (single characters in lower case). */
const DEFAULTS = { accept: ["a"], reject: ["x"], ignore: [" "], undo: ["Backspace", "Delete"] };
const NAMED = {
  space: " ",
  spacebar: " ",
  backspace: "Backspace",
  delete: "Delete",
  del: "Delete",
  enter: "Enter",
  return: "Enter",
  escape: "Escape",
  esc: "Escape",
  tab: "Tab",
};
/** `?` opens the help and number keys pick labels and options: never an answer's keys. */
const RESERVED = new Set(["?", "1", "2", "3", "4", "5", "6", "7", "8", "9", "Tab"]);
const SHOWN = { " ": "space", Backspace: "⌫", Delete: "Del", Enter: "Enter", Escape: "Esc" };
const ARIA = { " ": "Space", Backspace: "Backspace", Delete: "Delete", Enter: "Enter", Escape: "Escape" };

/** The key a keymap entry names, as `KeyboardEvent.key` gives it, or null. */
export function keyOf(name) {
  if (typeof name !== "string") return null;
  if (name === " ") return name;
  const trimmed = name.trim();
  if ([...trimmed].length === 1) return trimmed.toLowerCase();
  return NAMED[trimmed.toLowerCase()] ?? null;
}

/** The key a key event stands for: single characters in lower case, `a` and `A` alike. */
export const eventKey = (event) => (event.key.length === 1 ? event.key.toLowerCase() : event.key);

/** How a key is shown in a `<kbd>`, and how `aria-keyshortcuts` names it. */
export const keyLabel = (key) => SHOWN[key] ?? key;
export const ariaKey = (key) => ARIA[key] ?? key;

export class Keymap {
  /** `config`: the project's `keymap` (absent: the defaults); `warn`: where problems go. */
  constructor(config, warn = (message) => console.warn(`Quorum: ${message}`)) {
    this.keys = resolve(config, warn);
    this.byKey = new Map();
    for (const action of ACTIONS) for (const key of this.keys[action]) this.byKey.set(key, action);
  }

  /** The action a key event asks for, or null. */
  action(event) {
    return this.byKey.get(eventKey(event)) ?? null;
  }

  /** Whether a key (as `KeyboardEvent.key` gives it) answers or undoes. */
  bound(key) {
    return this.byKey.has(key);
  }

  /** The first key of an action, as a `<kbd>` shows it (`a`, `space`, `⌫`). */
  label(action) {
    return keyLabel(this.keys[action][0]);
  }

  /** Every key of an action, for `aria-keyshortcuts`. */
  aria(action) {
    return this.keys[action].map(ariaKey).join(" ");
  }
}

function resolve(config, warn) {
  const keys = Object.fromEntries(ACTIONS.map((action) => [action, [...DEFAULTS[action]]]));
  if (config === undefined || config === null) return keys;
  if (typeof config !== "object" || Array.isArray(config)) {
    warn(`config "keymap" must be an object like {"accept": ["a"]}; the default keys apply`);
    return keys;
  }
  const custom = new Set();
  for (const [action, names] of Object.entries(config)) {
    if (!ACTIONS.includes(action)) {
      warn(`keymap: "${action}" is not an action this page has (${ACTIONS.join(", ")}); left out`);
      continue;
    }
    const given = [];
    for (const name of Array.isArray(names) ? names : [names]) {
      const key = keyOf(name);
      if (key === null) warn(`keymap: ${JSON.stringify(name)} for ${action} is not a key name this page knows; left out`);
      else if (RESERVED.has(key)) warn(`keymap: "${name}" is kept for the page's own use, not for ${action}; left out`);
      else if (!given.includes(key)) given.push(key);
    }
    if (given.length) {
      keys[action] = given;
      custom.add(action);
    }
  }
  // A key bound twice: those actions get their defaults back (which never clash), until none is.
  for (;;) {
    const owner = new Map();
    const clashing = new Set();
    for (const action of ACTIONS) {
      for (const key of keys[action]) {
        if (owner.has(key)) clashing.add(owner.get(key)).add(action);
        else owner.set(key, action);
      }
    }
    const reset = [...clashing].filter((action) => custom.has(action));
    if (!reset.length) return keys;
    warn(`keymap: ${reset.join(" and ")} share a key with another action; they keep their default keys`);
    for (const action of reset) {
      keys[action] = [...DEFAULTS[action]];
      custom.delete(action);
    }
  }
}
