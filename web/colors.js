// Label colours: one stable colour per label, light enough for dark text on top.
//
// Project labels take the palette in order, so PERSON is the same colour for everyone
// on the team; a label the project does not list (from pre-set spans) gets a colour
// from its name, so it is at least stable. A project's `custom_theme` may set its own.

const PALETTE = [
  { bg: "#ffe08a", edge: "#c99a06" }, // amber
  { bg: "#b9d8ff", edge: "#3d7fd9" }, // blue
  { bg: "#b7ecc6", edge: "#2f9e58" }, // green
  { bg: "#ffc9de", edge: "#d6457f" }, // pink
  { bg: "#d9ccff", edge: "#7353d6" }, // violet
  { bg: "#ffd2ad", edge: "#e0701b" }, // orange
  { bg: "#a9ecf2", edge: "#1c97a6" }, // cyan
  { bg: "#e4e8a6", edge: "#8a9414" }, // olive
  { bg: "#ffc4c0", edge: "#d9443a" }, // red
  { bg: "#d3dae3", edge: "#62707f" }, // slate
];

function hashName(name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h;
}

/** The project's own colours (`custom_theme.labels`), by label: they win over the palette. */
let themed = new Map();

/**
 * Use the project's colours for these labels (`{"PERSON": "#ffd966"}`, CSS colours). The
 * edge is the colour darkened, so a theme needs one colour per label, as in Prodigy.
 */
export function setLabelColors(colors) {
  themed = new Map(
    Object.entries(colors).map(([label, bg]) => [label, { bg, edge: `color-mix(in srgb, ${bg} 55%, #000)` }]),
  );
}

/** `{bg, edge}` for `label`, given the project's labels in order. */
export function labelColor(label, labels = []) {
  const own = themed.get(label);
  if (own) return own;
  const index = labels.indexOf(label);
  return PALETTE[(index >= 0 ? index : hashName(label)) % PALETTE.length];
}

/** Set the colour variables an element's CSS uses (`--label-bg`, `--label-edge`). */
export function paint(el, label, labels) {
  const { bg, edge } = labelColor(label, labels);
  el.style.setProperty("--label-bg", bg);
  el.style.setProperty("--label-edge", edge);
  return el;
}
