// A small, safe Markdown renderer for the project's instructions.
//
// It builds DOM nodes and never parses anything as HTML: what it does not know (raw HTML,
// tables, images, links other than http(s)) stays visible as plain text. It knows ATX
// headings, paragraphs, `*em*`, `**strong**`, `` `code` ``, fenced code blocks, links,
// `<https://…>` autolinks, block quotes, rules and (nested) lists — what instructions
// are written with — and takes CommonMark's rules where they are cheap to follow.

import { h } from "./dom.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$/;
const PUNCTUATION = /[!-/:-@[-`{-~]/;
const WORD = /[\p{L}\p{N}]/u;

/** The Markdown `text` as a fragment of DOM nodes. Headings start at `<h{top}>`. */
export function renderMarkdown(text, { top = 1 } = {}) {
  const lines = String(text ?? "")
    .replace(/\r\n?/g, "\n")
    .replace(/\t/g, "    ")
    .split("\n");
  const fragment = document.createDocumentFragment();
  fragment.append(...blocks(lines, top));
  return fragment;
}

const isBlank = (line) => !line.trim();
const lead = (line) => line.length - line.trimStart().length;
/** Lines that end a paragraph without a blank line before them. */
const interrupts = (line) =>
  FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);

function blocks(lines, top) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (isBlank(line)) {
      i += 1;
    } else if ((m = FENCE.exec(line))) {
      const close = new RegExp(`^ {0,3}${m[1][0]}{${m[1].length},}\\s*$`);
      const code = [];
      for (i += 1; i < lines.length && !close.test(lines[i]); i++) code.push(lines[i]);
      i += 1; // the closing fence (or the end of the text)
      const lang = m[2] ? { class: `language-${m[2].replace(/[^\w+-]/g, "")}` } : {};
      out.push(h("pre", {}, h("code", lang, code.join("\n"))));
    } else if ((m = HEADING.exec(line))) {
      out.push(h(`h${Math.min(6, m[1].length + top - 1)}`, {}, inline(m[2] ?? "")));
      i += 1;
    } else if (RULE.test(line)) {
      out.push(h("hr"));
      i += 1;
    } else if (QUOTE.test(line)) {
      const quoted = [];
      for (; i < lines.length && (m = QUOTE.exec(lines[i])); i++) quoted.push(m[1]);
      out.push(h("blockquote", {}, blocks(quoted, top)));
    } else if (ITEM.test(line)) {
      i = list(lines, i, top, out);
    } else {
      const para = [line];
      for (i += 1; i < lines.length && !isBlank(lines[i]) && !interrupts(lines[i]); i++) para.push(lines[i]);
      out.push(h("p", {}, inline(para.map((l) => l.replace(/^ +/, "")).join("\n"))));
    }
  }
  return out;
}

/** A list from `lines[start]` on, appended to `out`; returns the index after it. */
function list(lines, start, top, out) {
  const first = ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const kind = ordered ? first[2].slice(-1) : first[2];
  const items = [];
  let loose = false;
  let i = start;
  for (;;) {
    const m = ITEM.exec(lines[i]);
    // The item's content is indented past its marker; later lines must be indented as far.
    const indent = m[1].length + m[2].length + Math.min(m[3]?.length ?? 1, 4);
    const content = [m[4] ?? ""];
    let blankBefore = false;
    for (i += 1; i < lines.length; i++) {
      const line = lines[i];
      if (isBlank(line)) {
        blankBefore = true;
        content.push("");
      } else if (lead(line) >= Math.min(indent, m[1].length + 2)) {
        // Indented under the item: its own. Two spaces are enough (`1. a` / `  - b` nests).
        content.push(line.slice(Math.min(lead(line), indent)));
        blankBefore = false;
      } else if (!blankBefore && !interrupts(line)) {
        content.push(line.trim()); // a lazy continuation of the item's paragraph
      } else break;
    }
    while (content.length && isBlank(content[content.length - 1])) content.pop();
    if (content.includes("")) loose = true;
    items.push(content);
    const next = i < lines.length ? ITEM.exec(lines[i]) : null;
    const same = next && (ordered ? /\d/.test(next[2]) && next[2].slice(-1) === kind : next[2] === kind);
    if (!same) break;
    if (blankBefore) loose = true;
  }
  const lis = items.map((content) => {
    const nodes = blocks(content, top);
    // A tight list holds its text directly, without paragraphs.
    return h("li", {}, loose ? nodes : nodes.map((n) => (n.tagName === "P" ? [...n.childNodes] : n)));
  });
  const startAt = ordered ? Number.parseInt(first[2], 10) : 1;
  out.push(h(ordered ? "ol" : "ul", ordered && startAt !== 1 ? { start: startAt } : {}, lis));
  return i;
}

/** The inline Markdown of one block as nodes: text, code, emphasis, links, line breaks. */
export function inline(text) {
  const out = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push(plain);
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === "\\" && PUNCTUATION.test(text[i + 1] ?? "")) {
      plain += text[i + 1];
      i += 2;
    } else if (ch === "\\" && text[i + 1] === "\n") {
      flush();
      out.push(h("br"));
      i += 2;
    } else if (ch === "\n") {
      // Two spaces before a line break make it a hard one; otherwise it reads as a space.
      const hard = / {2,}$/.test(plain);
      plain = plain.replace(/ +$/, "");
      flush();
      out.push(hard ? h("br") : "\n");
      i += 1;
    } else if (ch === "`") {
      const run = /^`+/.exec(text.slice(i))[0];
      const end = findRun(text, run, i + run.length);
      if (end < 0) {
        plain += run;
        i += run.length;
        continue;
      }
      let code = text.slice(i + run.length, end).replace(/\n/g, " ");
      if (/^ .*[^ ].* $/.test(code)) code = code.slice(1, -1);
      flush();
      out.push(h("code", {}, code));
      i = end + run.length;
    } else if (ch === "[") {
      const link = parseLink(text, i);
      if (!link) {
        plain += ch;
        i += 1;
        continue;
      }
      flush();
      out.push(safeLink(link.href, inline(link.label), link.title));
      i = link.end;
    } else if (ch === "<" && /^<https?:\/\/[^\s<>]+>/i.test(text.slice(i))) {
      const href = /^<([^>]+)>/.exec(text.slice(i))[1];
      flush();
      out.push(safeLink(href, [href]));
      i += href.length + 2;
    } else if (ch === "*" || ch === "_") {
      const em = parseEmphasis(text, i);
      if (!em) {
        const run = new RegExp(`^\\${ch}+`).exec(text.slice(i))[0];
        plain += run;
        i += run.length;
        continue;
      }
      flush();
      out.push(h(em.strong ? "strong" : "em", {}, inline(em.inner)));
      i = em.end;
    } else {
      plain += ch;
      i += 1;
    }
  }
  flush();
  return out;
}

/** The index of the next backtick run exactly as long as `run`, from `from`; -1 if none. */
function findRun(text, run, from) {
  for (let at = text.indexOf(run, from); at >= 0; at = text.indexOf(run, at + 1)) {
    if (text[at - 1] !== "`" && text[at + run.length] !== "`") return at;
    while (text[at + 1] === "`") at += 1;
  }
  return -1;
}

/** `[label](href "title")` at `start`: `{label, href, title, end}`, or null. */
function parseLink(text, start) {
  let depth = 0;
  let close = -1;
  for (let i = start; i < text.length; i++) {
    if (text[i] === "\\") i += 1;
    else if (text[i] === "[") depth += 1;
    else if (text[i] === "]" && --depth === 0) {
      close = i;
      break;
    }
  }
  if (close < 0 || text[close + 1] !== "(") return null;
  const m = /^\(\s*(<[^<>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+("[^"]*"|'[^']*'))?\s*\)/.exec(
    text.slice(close + 1),
  );
  if (!m) return null;
  return {
    label: text.slice(start + 1, close),
    href: m[1].replace(/^<(.*)>$/, "$1"),
    title: m[2] ? m[2].slice(1, -1) : null,
    end: close + 1 + m[0].length,
  };
}

/** A link that opens in a new tab, for an http(s) address; any other is just its label. */
function safeLink(href, label, title = null) {
  let url = null;
  try {
    url = new URL(href);
  } catch {
    // A relative or malformed address: the page has nowhere sensible to take it.
  }
  if (!url || !["http:", "https:"].includes(url.protocol)) return h("span", {}, label);
  return h("a", { href: url.href, title, target: "_blank", rel: "noopener noreferrer" }, label);
}

/** `*em*`, `_em_`, `**strong**` or `__strong__` at `start`: `{strong, inner, end}`, or null. */
function parseEmphasis(text, start) {
  const ch = text[start];
  const run = new RegExp(`^\\${ch}+`).exec(text.slice(start))[0];
  const size = run.length >= 2 ? 2 : 1;
  const after = text[start + run.length] ?? "";
  // An opener is followed by text, and `_` never opens inside a word (snake_case stays).
  if (!after.trim() || (ch === "_" && WORD.test(text[start - 1] ?? ""))) return null;
  const from = start + size;
  for (let at = text.indexOf(ch, from + 1); at >= 0; at = text.indexOf(ch, at + 1)) {
    let len = 1;
    while (text[at + len] === ch) len += 1;
    const before = text[at - 1];
    const next = text[at + len] ?? "";
    const closes = before.trim() && !(ch === "_" && WORD.test(next));
    if (closes && len === size) return { strong: size === 2, inner: text.slice(from, at), end: at + size };
    if (closes && size === 2 && len > 2) return { strong: true, inner: text.slice(from, at + len - 2), end: at + len };
    at += len - 1; // a run of another size belongs to emphasis nested inside
  }
  return null;
}
