// Checking what a task brings: its text, tokens and pre-set spans.
//
// Tasks come from files people wrote; a bad one must produce a clear message in the
// card, never a blank page. Everything here is pure: data in, data and messages out.
// Offsets come in as code points (see offsets.js) and leave in UTF-16 units, the units
// the views slice with; messages quote them as the task has them.

/** Messages about the task's text (missing, not a string, empty). */
export function textProblems(task) {
  if (typeof task.text !== "string") {
    return ['This task has no "text" to show. Skip it with space (ignore) and tell the project owner.'];
  }
  if (!task.text.trim()) {
    return [
      "This task's text is empty, so there is nothing to annotate. " +
        "Press space to skip it (ignore), or x to reject it.",
    ];
  }
  return [];
}

/**
 * The task's tokens in UTF-16 units, if they are usable for the text, else tokens made
 * here (whitespace and punctuation). `offsets` is the text's `Offsets`.
 */
export function tokensFor(task, offsets) {
  const given = task.tokens;
  if (
    Array.isArray(given) &&
    given.length &&
    given.every(
      (t, i) =>
        t &&
        Number.isInteger(t.start) &&
        Number.isInteger(t.end) &&
        t.start >= 0 &&
        t.end <= offsets.length &&
        t.start <= t.end &&
        (i === 0 || given[i - 1].end <= t.start),
    )
  ) {
    return { tokens: given.map((t) => offsets.inUnits(t)), made: false };
  }
  const text = offsets.text;
  const tokens = [];
  const pattern = /\w+(?:['’]\w+)*|[^\s\w]/gu;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
    tokens.push({ text: m[0], start: m.index, end: m.index + m[0].length, id: tokens.length });
  }
  for (let i = 0; i < tokens.length; i++) {
    const next = i + 1 < tokens.length ? tokens[i + 1].start : text.length;
    tokens[i].ws = next > tokens[i].end;
  }
  return { tokens, made: Boolean(text.trim()) };
}

function describe(span) {
  const label = span && span.label ? String(span.label) : "unlabelled";
  const where =
    span && Number.isFinite(span.start) && Number.isFinite(span.end) ? ` at ${span.start}–${span.end}` : "";
  return `${label}${where}`;
}

/**
 * Spans that fit the text and its tokens, in UTF-16 units, snapped to token indices, in
 * text order, plus one message per span that does not fit (outside the text,
 * overlapping, no label). `raw` counts code points; `tokens` (optional) UTF-16 units.
 */
export function checkSpans(raw, offsets, tokens = null) {
  const spans = [];
  const problems = [];
  const given = new Map(); // snapped span -> the span as the task has it, for messages
  if (raw === undefined || raw === null) return { spans, problems };
  if (!Array.isArray(raw)) {
    return { spans, problems: ['This task\'s "spans" is not a list, so no highlights are shown.'] };
  }
  for (const span of raw) {
    const ok =
      span &&
      Number.isInteger(span.start) &&
      Number.isInteger(span.end) &&
      span.start >= 0 &&
      span.end <= offsets.length &&
      span.start < span.end;
    if (!ok) {
      problems.push(
        `The highlight ${describe(span)} lies outside this task's text ` +
          `(${offsets.length} characters), so it is not shown and is left out of your answer.`,
      );
      continue;
    }
    if (!span.label) {
      problems.push(`The highlight ${describe(span)} has no label; it is left out of your answer.`);
      continue;
    }
    const { start, end } = offsets.inUnits(span);
    let tokenStart = 0;
    let tokenEnd = 0;
    if (tokens) {
      tokenStart = tokens.findIndex((t) => t.end > start);
      tokenEnd = tokens.length - 1 - [...tokens].reverse().findIndex((t) => t.start < end);
      if (tokenStart < 0 || tokenEnd >= tokens.length || tokenEnd < tokenStart) {
        problems.push(`The highlight ${describe(span)} covers no word; it is left out of your answer.`);
        continue;
      }
    }
    const snapped = tokens
      ? {
          start: tokens[tokenStart].start,
          end: tokens[tokenEnd].end,
          token_start: tokenStart,
          token_end: tokenEnd,
          label: String(span.label),
        }
      : { start, end, label: String(span.label) };
    const clash = spans.find((s) => s.start < snapped.end && snapped.start < s.end);
    if (clash) {
      problems.push(`The highlight ${describe(span)} overlaps ${describe(given.get(clash))}; only the first is shown.`);
      continue;
    }
    spans.push(snapped);
    given.set(snapped, span);
  }
  spans.sort((a, b) => a.start - b.start);
  return { spans, problems };
}
