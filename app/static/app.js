// The search page: calls GET /search and renders results. Text is inserted with textContent only
// (never innerHTML), so document content can never inject markup into the page.
"use strict";

const form = document.getElementById("search-form");
const statusEl = document.getElementById("status");
const list = document.getElementById("results");

// Words of the query, lower-cased, for highlighting (Unicode letters/digits; CJK one character each).
function queryTerms(q) {
  const words = q.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  const terms = new Set();
  for (const w of words) {
    if (/\p{Script=Han}/u.test(w)) for (const ch of w) terms.add(ch);
    else if (w.length > 1) terms.add(w);
  }
  return [...terms].sort((a, b) => b.length - a.length);
}

function escapeRegExp(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

// Appends `text` to `el`, wrapping every occurrence of a query term in <mark>.
function appendHighlighted(el, text, terms) {
  if (!terms.length) { el.textContent = text; return; }
  const re = new RegExp(terms.map(escapeRegExp).join("|"), "giu");
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) el.append(document.createTextNode(text.slice(last, m.index)));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    el.append(mark);
    last = m.index + m[0].length;
  }
  if (last < text.length) el.append(document.createTextNode(text.slice(last)));
}

function render(data, q) {
  list.replaceChildren();
  const terms = queryTerms(q);
  for (const r of data.results) {
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.id = r.id;
    const title = document.createElement("span");
    title.className = "title";
    appendHighlighted(title, r.title || r.id, terms);
    const scores = document.createElement("span");
    scores.className = "scores";
    scores.textContent = r.dense_score !== null && r.dense_score !== r.score
      ? `score ${r.score.toFixed(4)} · cosine ${r.dense_score.toFixed(3)}`
      : `score ${r.score.toFixed(3)}`;
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = r.text.length > 400 ? r.text.slice(0, 400) + "…" : r.text;
    li.append(title, scores, text);
    const meta = Object.entries(r.metadata || {});
    if (meta.length) {
      const m = document.createElement("div");
      m.className = "meta";
      m.textContent = meta.map(([k, v]) => `${k}: ${v}`).join(" · ");
      li.append(m);
    }
    list.append(li);
  }
  statusEl.className = "";
  statusEl.textContent = `${data.results.length} results in ${data.took_ms.toFixed(1)} ms · ${data.model} · ${data.index}`;
}

async function search(q, mode, topK) {
  statusEl.className = "";
  statusEl.textContent = "Searching…";
  const params = new URLSearchParams({ q, mode, top_k: topK });
  try {
    const resp = await fetch(`/search?${params}`, { headers: { Accept: "application/json" } });
    const data = await resp.json();
    if (!resp.ok) throw new Error(data.error ? data.error.message : `HTTP ${resp.status}`);
    render(data, q);
  } catch (err) {
    list.replaceChildren();
    statusEl.className = "error";
    statusEl.textContent = `Error: ${err.message}`;
  }
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = document.getElementById("q").value.trim();
  if (!q) return;
  const mode = document.getElementById("mode").value;
  const topK = document.getElementById("top_k").value;
  history.replaceState(null, "", `?${new URLSearchParams({ q, mode, top_k: topK })}`);
  search(q, mode, topK);
});

// A shared link (/?q=…) runs its search on load.
const initial = new URLSearchParams(location.search);
if (initial.get("q")) {
  document.getElementById("q").value = initial.get("q");
  if (initial.get("mode")) document.getElementById("mode").value = initial.get("mode");
  if (initial.get("top_k")) document.getElementById("top_k").value = initial.get("top_k");
  search(initial.get("q"), document.getElementById("mode").value, document.getElementById("top_k").value);
}
