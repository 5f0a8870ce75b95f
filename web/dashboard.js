// Quorum's dashboard: fetches /dashboard/data and draws it as inline SVG.
//
// No chart library and no CDN: four small drawing functions (a line chart, stacked
// bars, a heatmap, a list), sized by viewBox so they scale with the page. The data is
// admin-only; the token, when one is needed, stays in this tab's sessionStorage.

const SVG_NS = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "quorum-admin-token";
const COLORS = [
  "#3d7fd9", "#2f9e58", "#d6457f", "#7353d6", "#e0701b",
  "#1c97a6", "#c99a06", "#8a9414", "#d9443a", "#62707f",
];

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function html(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function chart(container, name, width, height, label) {
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, "data-chart": name,
  });
  svg.append(el("title", {}, label));
  container.replaceChildren(svg);
  return svg;
}

function empty(svg, width, height, message) {
  svg.append(el("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, message));
}

/** A round top for the y axis and the step between its five gridlines. */
function niceScale(value) {
  const rough = Math.max(value, 1) / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const clean = Number.isInteger(step) ? step : Math.ceil(step);
  return { top: clean * Math.ceil(Math.max(value, 1) / clean), step: clean };
}

const fmt = (n) => Number(n).toLocaleString("en");

function yAxis(svg, { left, top, plotW, plotH, scale }) {
  const grid = el("g", { class: "grid" });
  for (let value = 0; value <= scale.top; value += scale.step) {
    const y = top + plotH - (plotH * value) / scale.top;
    grid.append(el("line", { x1: left, x2: left + plotW, y1: y, y2: y }));
    grid.append(el("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, fmt(value)));
  }
  svg.append(grid);
}

function legend(container, entries) {
  const list = html("ul", { class: "dash-legend" });
  for (const { name, color, dashed } of entries) {
    const item = html("li");
    const swatch = html("span", { class: "dash-swatch" });
    swatch.style.background = dashed ? "transparent" : color;
    if (dashed) swatch.style.border = `2px dashed ${color}`;
    item.append(swatch, document.createTextNode(name));
    list.append(item);
  }
  container.append(list);
}

function shortTime(iso, bucket) {
  const d = new Date(iso.endsWith("Z") ? iso : iso + "Z");
  const day = d.toISOString().slice(5, 10);
  return bucket === "hour" ? `${day} ${d.toISOString().slice(11, 13)}h` : day;
}

/** Cumulative answers and tasks answered over time, with the dataset's task count. */
function drawProgress(container, progress, totalTasks) {
  const W = 900, H = 260, left = 56, right = 16, top = 14, bottom = 34;
  const plotW = W - left - right, plotH = H - top - bottom;
  const svg = chart(container, "progress", W, H, "Progress over time: cumulative answers and tasks answered");
  const points = progress.points;
  if (!points.length) return empty(svg, W, H, "No answers yet");
  const scale = niceScale(Math.max(totalTasks || 0, ...points.map((p) => Math.max(p.answers, p.tasks))));
  yAxis(svg, { left, top, plotW, plotH, scale });
  const times = points.map((p) => Date.parse(p.t + (p.t.endsWith("Z") ? "" : "Z")));
  const t0 = times[0], t1 = times[times.length - 1];
  const x = (i) => left + (t1 === t0 ? plotW / 2 : (plotW * (times[i] - t0)) / (t1 - t0));
  const y = (v) => top + plotH - (plotH * v) / scale.top;
  const ticks = t1 === t0 ? 1 : 6;
  for (let k = 0; k < ticks; k++) {
    const t = ticks === 1 ? t0 : t0 + ((t1 - t0) * k) / (ticks - 1);
    const at = ticks === 1 ? left + plotW / 2 : left + (plotW * k) / (ticks - 1);
    const anchor = ticks === 1 ? "middle" : k === 0 ? "start" : k === ticks - 1 ? "end" : "middle";
    svg.append(el("text", { x: at, y: H - 12, "text-anchor": anchor },
      shortTime(new Date(t).toISOString(), progress.bucket)));
  }
  if (totalTasks > 0) {
    svg.append(el("line", {
      x1: left, x2: left + plotW, y1: y(totalTasks), y2: y(totalTasks),
      stroke: COLORS[9], "stroke-width": 1.5, "stroke-dasharray": "6 5", "data-series": "total",
    }));
  }
  const series = [
    { key: "answers", name: "answers", color: COLORS[0] },
    { key: "tasks", name: "tasks answered", color: COLORS[1] },
  ];
  for (const { key, color, name } of series) {
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    svg.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 2.5, "data-series": key }));
    points.forEach((p, i) => {
      const dot = el("circle", { cx: x(i), cy: y(p[key]), r: 3, fill: color });
      dot.append(el("title", {}, `${shortTime(p.t, progress.bucket)}: ${fmt(p[key])} ${name}`));
      svg.append(dot);
    });
  }
  const entries = series.map(({ name, color }) => ({ name, color }));
  if (totalTasks > 0) entries.push({ name: `${fmt(totalTasks)} tasks in the dataset`, color: COLORS[9], dashed: true });
  legend(container, entries);
}

/** Stacked bars: one bar per day, one colour per annotator. */
function drawPerDay(container, rows, sessions) {
  const W = 900, H = 260, left = 56, right = 16, top = 14, bottom = 34;
  const plotW = W - left - right, plotH = H - top - bottom;
  const svg = chart(container, "per-day", W, H, "Answers per annotator per day");
  if (!rows.length) return empty(svg, W, H, "No answers yet");
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const totals = Object.fromEntries(days.map((d) => [d, 0]));
  for (const r of rows) totals[r.day] += r.answers;
  const scale = niceScale(Math.max(...Object.values(totals)));
  yAxis(svg, { left, top, plotW, plotH, scale });
  const max = scale.top;
  const slot = plotW / days.length;
  const barW = Math.min(64, slot * 0.7);
  const color = (s) => COLORS[sessions.indexOf(s) % COLORS.length];
  days.forEach((day, i) => {
    let base = top + plotH;
    const x = left + slot * i + (slot - barW) / 2;
    for (const session of sessions) {
      const row = rows.find((r) => r.day === day && r.session === session);
      if (!row || !row.answers) continue;
      const h = (plotH * row.answers) / max;
      base -= h;
      const rect = el("rect", {
        x, y: base, width: barW, height: Math.max(h, 0.5), fill: color(session), rx: 2,
        "data-session": session, "data-day": day, "data-answers": row.answers,
      });
      rect.append(el("title", {}, `${session}, ${day}: ${fmt(row.answers)} answers ` +
        `(${row.accept} accept, ${row.reject} reject, ${row.ignore} ignore)`));
      svg.append(rect);
    }
    svg.append(el("text", { x: x + barW / 2, y: H - 12, "text-anchor": "middle" }, day.slice(5)));
    svg.append(el("text", { x: x + barW / 2, y: base - 4, "text-anchor": "middle", class: "value-label" },
      fmt(totals[day])));
  });
  legend(container, sessions.map((name) => ({ name, color: color(name) })));
}

function heat(value) {
  if (value === null || value === undefined) return { fill: "var(--d-grid)", ink: "var(--d-muted)" };
  const v = Math.max(-1, Math.min(1, value));
  if (v >= 0) {
    const light = 94 - 56 * v;
    return { fill: `hsl(214 62% ${light}%)`, ink: light < 60 ? "#fff" : "#1b1d21" };
  }
  const light = 94 - 40 * -v;
  return { fill: `hsl(2 70% ${light}%)`, ink: light < 60 ? "#fff" : "#1b1d21" };
}

/** Annotator × annotator matrix of pairwise agreement (kappa, or span F1). */
function drawAgreement(container, agreement, note) {
  const summary = $("agreement-summary");
  $("agreement-metric").textContent = agreement ? `· ${agreement.metric}` : "";
  if (!agreement) {
    summary.textContent = note || "No agreement yet.";
    const svg = chart(container, "agreement", 420, 120, "Agreement heatmap: no overlapping answers");
    return empty(svg, 420, 60, "no items annotated by two or more sessions");
  }
  const o = agreement.overall;
  const f = (v) => (v === null || v === undefined ? "—" : v.toFixed(3));
  summary.textContent = agreement.task === "spans"
    ? `Span F1 exact ${f(o.f1_exact)}, token overlap ${f(o.f1_token)} over ${fmt(o.n_items)} items.`
    : `Fleiss' kappa ${f(o.fleiss_kappa)}, Krippendorff's alpha ${f(o.krippendorff_alpha)} ` +
      `over ${fmt(o.n_items)} items, ${o.n_sessions} sessions.` + (o.note ? ` (${o.note})` : "");
  const sessions = agreement.sessions;
  const cell = Math.max(44, Math.min(96, Math.floor(420 / Math.max(sessions.length, 1))));
  const left = 96, top = 80;
  const size = sessions.length * cell;
  const svg = chart(container, "agreement", left + size + 8, top + size + 8,
    `Agreement heatmap, ${agreement.metric}, annotator by annotator`);
  svg.style.maxWidth = `${left + size + 8}px`;
  const at = new Map();
  for (const c of agreement.cells) {
    at.set(`${c.a}\u0000${c.b}`, c);
    at.set(`${c.b}\u0000${c.a}`, c);
  }
  sessions.forEach((name, i) => {
    svg.append(el("text", { x: left - 8, y: top + cell * i + cell / 2 + 4, "text-anchor": "end" }, name));
    svg.append(el("text", {
      x: left + cell * i + cell / 2, y: top - 8, "text-anchor": "start",
      transform: `rotate(-40 ${left + cell * i + cell / 2} ${top - 8})`,
    }, name));
  });
  sessions.forEach((a, i) => sessions.forEach((b, j) => {
    const x = left + cell * j, y = top + cell * i;
    if (i === j) {
      svg.append(el("rect", { x: x + 1, y: y + 1, width: cell - 2, height: cell - 2, fill: "none",
        stroke: "var(--d-grid)", rx: 4 }));
      return;
    }
    const c = at.get(`${a}\u0000${b}`);
    const value = c ? c.value : null;
    const { fill, ink } = heat(value);
    const rect = el("rect", { x: x + 1, y: y + 1, width: cell - 2, height: cell - 2, fill, rx: 4,
      "data-a": a, "data-b": b, "data-value": value ?? "", class: "heat" });
    rect.append(el("title", {}, c
      ? `${a} × ${b}: ${agreement.metric} ${value === null ? "undefined" : value.toFixed(3)} over ${fmt(c.n_items)} items`
      : `${a} × ${b}: no task answered by both`));
    svg.append(rect);
    const label = el("text", { x: x + cell / 2, y: y + cell / 2 + 4, "text-anchor": "middle",
      class: "value-label" }, value === null ? "—" : value.toFixed(2));
    label.style.fill = ink;
    svg.append(label);
  }));
  legend(container, [-1, -0.5, 0, 0.5, 1].map((v) => ({ name: v.toFixed(1), color: heat(v).fill })));
}

function decisionText(d) {
  const parts = [`${d.session}: ${d.answer}`];
  if (d.accept) parts.push(d.accept.length ? d.accept.join(", ") : "(none)");
  if (d.spans) parts.push(d.spans.map((s) => `${s.label} ${s.start}–${s.end}`).join(", ") || "(no spans)");
  return parts.join(" · ");
}

function drawReview(list, items, count) {
  $("disagreement-count").textContent = count ? `· ${fmt(count)}` : "";
  list.replaceChildren();
  if (!items.length) {
    list.append(html("li", { class: "dash-muted" }, "No disagreements."));
    return;
  }
  for (const item of items) {
    const li = html("li", { "data-task-hash": String(item.task_hash) });
    li.append(html("p", { class: "text" }, item.text ?? `task ${item.task_hash}`));
    const chips = html("div", { class: "decisions" });
    for (const d of item.decisions) chips.append(html("span", { class: `dash-chip ${d.answer}` }, decisionText(d)));
    li.append(chips);
    list.append(li);
  }
}

function drawTiles(data) {
  const tiles = $("dash-tiles");
  const share = data.total_tasks ? ` of ${fmt(data.total_tasks)}` : "";
  const median = data.task_seconds?.median;
  const entries = [
    [fmt(data.totals.answers ?? 0), "answers"],
    [`${fmt(data.tasks_answered)}${share}`, "tasks answered"],
    [fmt(data.sessions.length), "annotators"],
    [median === null || median === undefined ? "—" : `${median.toFixed(1)} s`, "median time per task"],
    [fmt(data.disagreement_count), "disagreements"],
  ];
  tiles.replaceChildren(...entries.map(([value, name]) => {
    const tile = html("div", { class: "dash-tile" });
    tile.append(html("strong", {}, value), html("span", {}, name));
    return tile;
  }));
}

function render(data) {
  $("dash-title").textContent = `Dashboard · ${data.dataset}`;
  document.title = `Quorum · ${data.dataset} · dashboard`;
  drawTiles(data);
  drawProgress($("chart-progress"), data.progress, data.total_tasks);
  drawPerDay($("chart-per-day"), data.per_day, data.sessions);
  drawAgreement($("chart-agreement"), data.agreement, data.agreement_note);
  drawReview($("review"), data.disagreements, data.disagreement_count);
  $("dash-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function load() {
  const main = $("dash");
  main.dataset.state = "loading";
  $("dash-error").hidden = true;
  const params = new URLSearchParams(location.search);
  const url = "/dashboard/data" + (params.get("dataset") ? `?dataset=${encodeURIComponent(params.get("dataset"))}` : "");
  const token = sessionStorage.getItem(TOKEN_KEY);
  let response;
  try {
    // credentials "omit": a 401 must reach this code, not open the browser's Basic-auth prompt.
    response = await fetch(url, {
      credentials: "omit",
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
  } catch (exc) {
    return fail(`The server did not answer (${exc.message}). Is the feed running?`);
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("dash-login").hidden = false;
    $("dash-login-message").textContent = body.message || "This dashboard needs the admin token.";
    main.dataset.state = "login";
    return;
  }
  if (!response.ok) return fail(body.message || `The server answered ${response.status}.`);
  $("dash-login").hidden = true;
  render(body);
  main.dataset.state = "ready";
}

function fail(message) {
  $("dash-error").textContent = message;
  $("dash-error").hidden = false;
  $("dash").dataset.state = "error";
}

$("dash-refresh").addEventListener("click", load);
$("dash-login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("dash-token").value.trim());
  load();
});
load();
