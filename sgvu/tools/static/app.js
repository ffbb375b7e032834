// The page of `python -m sgvu.tools.serve`: pointer strokes -> POST /api/search after every stroke.
// Strokes are kept in QuickDraw format ([[x...], [y...]]) in CSS pixels of the canvas; the server maps the
// canvas onto the sketch canvas (it is sent as `canvas: [width, height]`).
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const state = { strokes: [], current: null, info: null, target: null, seq: 0, shown: 0 };

function resizeCanvas() {
  const rect = canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(rect.width * dpr);
  canvas.height = Math.round(rect.height * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  redraw();
}

function redraw() {
  const rect = canvas.getBoundingClientRect();
  ctx.clearRect(0, 0, rect.width, rect.height);
  ctx.lineWidth = 3;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#111";
  const all = state.current ? state.strokes.concat([state.current]) : state.strokes;
  for (const [xs, ys] of all) {
    ctx.beginPath();
    ctx.moveTo(xs[0], ys[0]);
    if (xs.length === 1) ctx.lineTo(xs[0] + 0.01, ys[0]);  // a dot
    for (let i = 1; i < xs.length; i++) ctx.lineTo(xs[i], ys[i]);
    ctx.stroke();
  }
}

function point(event) {
  const rect = canvas.getBoundingClientRect();
  const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
  return [clamp(event.clientX - rect.left, rect.width), clamp(event.clientY - rect.top, rect.height)];
}

canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== undefined && event.button > 0) return;  // left button, pen tip or touch only
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  state.current = [[x], [y]];
  redraw();
});

canvas.addEventListener("pointermove", (event) => {
  if (!state.current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of (events.length ? events : [event])) {
    const [x, y] = point(e);
    const [xs, ys] = state.current;
    if (xs.length && Math.abs(xs[xs.length - 1] - x) < 0.5 && Math.abs(ys[ys.length - 1] - y) < 0.5) continue;
    xs.push(x);
    ys.push(y);
  }
  redraw();
});

function endStroke() {
  if (!state.current) return;
  state.strokes.push(state.current);
  state.current = null;
  redraw();
  changed();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

$("undo").addEventListener("click", () => { state.strokes.pop(); redraw(); changed(); });
$("clear").addEventListener("click", () => { state.strokes = []; redraw(); changed(); });
$("top").addEventListener("change", () => changed());
$("expected").addEventListener("change", () => changed());
$("untarget").addEventListener("click", () => { state.target = null; changed(); });
let textTimer = null;
$("text").addEventListener("input", () => { clearTimeout(textTimer); textTimer = setTimeout(changed, 300); });

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

function changed() {
  $("undo").disabled = $("clear").disabled = state.strokes.length === 0;
  if (state.strokes.length === 0) {
    state.seq++;  // answers still in flight are now stale
    showResults({ strokes: 0, results: [] });
    $("target").hidden = true;
    setStatus("Draw on the canvas: the gallery re-ranks after every stroke.");
    return;
  }
  search();
}

async function search() {
  const seq = ++state.seq;
  const rect = canvas.getBoundingClientRect();
  const body = { strokes: state.strokes, top: Number($("top").value), canvas: [rect.width, rect.height] };
  if (state.info && state.info.takes_text) body.text = $("text").value;
  if (state.info && state.info.levels > 0) body.expected_strokes = Math.max(1, Number($("expected").value) || 1);
  if (state.target) body.target = state.target;
  let answer;
  try {
    const response = await fetch("/api/search", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  } catch (err) {
    if (seq === state.seq) setStatus(`search failed: ${err.message}`, true);
    return;
  }
  if (seq !== state.seq) return;  // a newer stroke's answer is on its way
  showResults(answer);
  setStatus(`after ${answer.strokes} stroke${answer.strokes === 1 ? "" : "s"}: top ${answer.results.length} ` +
            `of ${answer.gallery_size} photos (${answer.milliseconds} ms on the server)`);
}

function showResults(answer) {
  const list = $("results");
  list.replaceChildren();
  for (const hit of answer.results) {
    const item = document.createElement("li");
    item.dataset.key = hit.key;
    item.classList.toggle("target", hit.key === state.target);
    item.title = `${hit.key} (click: follow its rank)`;
    const img = document.createElement("img");
    img.src = hit.image;
    img.alt = hit.category;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.innerHTML = `<span class="rank">#${hit.rank}</span><span class="score">${hit.score.toFixed(3)}</span>`;
    const category = document.createElement("div");
    category.className = "category";
    category.textContent = hit.category;
    item.append(img, meta, category);
    item.addEventListener("click", () => { state.target = hit.key; changed(); });
    list.append(item);
  }
  list.dataset.strokes = String(answer.strokes);
  $("results-title").textContent = answer.strokes ? `Results after ${answer.strokes} strokes` : "Results";
  if (answer.target) showTarget(answer.target);
  else $("target").hidden = true;
}

function showTarget(target) {
  $("target").hidden = false;
  $("target-image").src = target.image;
  $("target-ranks").textContent = target.strokes.map((s, i) => `${s}: #${target.ranks[i]}`).join("  \u00b7  ");
  const svg = $("target-chart");
  const w = 420, h = 160, left = 40, bottom = 24, top = 10, right = 10;
  const n = Math.max(...target.strokes, 2);
  const worst = Math.max(...target.ranks, 10);
  // log scale: rank 1 at the top, the worst rank at the bottom
  const y = (r) => top + (h - top - bottom) * Math.log(r) / Math.log(worst);
  const x = (s) => left + (w - left - right) * (s - 1) / (n - 1);
  const points = target.strokes.map((s, i) => `${x(s).toFixed(1)},${y(target.ranks[i]).toFixed(1)}`).join(" ");
  const ticks = [1, 10, 100, 1000, 10000].filter((r) => r <= worst);
  svg.innerHTML =
    ticks.map((r) => `<line x1="${left}" x2="${w - right}" y1="${y(r)}" y2="${y(r)}" stroke="#eee"/>` +
                     `<text x="${left - 4}" y="${y(r) + 4}" font-size="10" text-anchor="end">#${r}</text>`).join("") +
    target.strokes.filter((s, i) => target.strokes.length <= 12 || i % Math.ceil(target.strokes.length / 12) === 0)
      .map((s) => `<text x="${x(s)}" y="${h - bottom + 12}" font-size="9" text-anchor="middle">${s}</text>`).join("") +
    `<text x="${(left + w - right) / 2}" y="${h - 2}" font-size="10" text-anchor="middle">strokes drawn</text>` +
    `<polyline points="${points}" fill="none" stroke="#2a9d2a" stroke-width="2"/>` +
    target.strokes.map((s, i) => `<circle cx="${x(s)}" cy="${y(target.ranks[i])}" r="3" fill="#2a9d2a"/>`).join("");
}

async function loadInfo() {
  try {
    const response = await fetch("/api/info");
    state.info = await response.json();
  } catch (err) {
    setStatus(`cannot reach the server: ${err.message}`, true);
    return;
  }
  const info = state.info;
  $("served").textContent = `${info.experiment}: ${info.bundle} from ${info.workdir}, ` +
                            `gallery of ${info.gallery_size} ${info.split} photos`;
  $("text-label").hidden = !info.takes_text;
  $("expected-label").hidden = !(info.levels > 0);
  document.body.dataset.ready = "1";
}

window.addEventListener("resize", resizeCanvas);
resizeCanvas();
loadInfo();
