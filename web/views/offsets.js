// Text offsets in two units: code points (what spaCy, Python and the ledger count) and
// UTF-16 code units (what a JavaScript string's `slice` and `length` count).
//
// Every offset that comes with a task (`spans`, `tokens`) is in code points, and every
// offset an answer carries must be too. Views slice strings in UTF-16, so they convert
// at their edges: code points -> UTF-16 when a task comes in, back when an answer goes
// out. The two differ only after a character outside the Basic Multilingual Plane (an
// emoji, 𝔘, 𠀋), which takes two UTF-16 units and one code point.

const SURROGATE = /[\uD800-\uDFFF]/;

/** Both offset systems of one text. */
export class Offsets {
  /** @param {string} text */
  constructor(text) {
    this.text = text;
    this.plain = !SURROGATE.test(text); // then both systems agree
    if (this.plain) {
      this.length = text.length;
      return;
    }
    const units = []; // code point index -> UTF-16 index
    const points = new Int32Array(text.length + 1); // UTF-16 index -> code point index
    for (let unit = 0; unit < text.length; ) {
      const width = text.codePointAt(unit) > 0xffff ? 2 : 1;
      points[unit] = units.length;
      if (width === 2) points[unit + 1] = units.length; // inside a pair: the pair's code point
      units.push(unit);
      unit += width;
    }
    points[text.length] = units.length;
    units.push(text.length);
    this.units = units;
    this.points = points;
    /** The text's length in code points. */
    this.length = units.length - 1;
  }

  /** The UTF-16 index of code point offset `point` (0 … length). */
  toUnits(point) {
    return this.plain ? point : this.units[point];
  }

  /** The code point offset of UTF-16 index `unit` (0 … text.length). */
  toPoints(unit) {
    return this.plain ? unit : this.points[unit];
  }

  /** `{start, end}` of anything, moved from code points to UTF-16 (other keys kept). */
  inUnits(item) {
    return this.plain ? { ...item } : { ...item, start: this.toUnits(item.start), end: this.toUnits(item.end) };
  }

  /** `{start, end}` of anything, moved from UTF-16 to code points (other keys kept). */
  inPoints(item) {
    return this.plain ? { ...item } : { ...item, start: this.toPoints(item.start), end: this.toPoints(item.end) };
  }
}
