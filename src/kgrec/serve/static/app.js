// kgrec serve page: plain JavaScript over the JSON API of the same server.
"use strict";
const $ = (id) => document.getElementById(id);
let runs = [];

function headers() {
  const t = localStorage.getItem("kgrec-token");
  return t ? { Authorization: "Bearer " + t } : {};
}

async function api(path, params) {
  const q = new URLSearchParams(params || {});
  const run = $("run").value;
  if (run) q.set("run", run);
  const res = await fetch(path + "?" + q.toString(), { headers: headers() });
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (res.status === 401) { $("token-box").hidden = false; }
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function itemButton(label, name) {
  const b = el("button", name && name !== label ? `${name} (${label})` : label, "item-link");
  b.type = "button";
  b.dataset.item = label;
  b.addEventListener("click", () => showItem(label));
  return b;
}

async function loadRuns() {
  const body = await api("/models");
  runs = body.runs;
  const sel = $("run");
  const current = sel.value;
  sel.innerHTML = "";
  for (const r of runs) {
    const o = el("option", `${r.run} (${r.model} on ${r.dataset})`);
    o.value = r.run;
    sel.appendChild(o);
  }
  if (current) sel.value = current;
  await runChanged();
}

async function runChanged() {
  const r = runs.find((x) => x.run === $("run").value) || runs[0];
  if (!r) return;
  $("recs").innerHTML = "";
  $("item-pane").hidden = true;
  const shown = Object.assign({}, (r.metrics || {}).test || {}, Object.fromEntries(
    Object.entries((r.metrics || {}).topk || {}).filter(([k]) => k.endsWith("@10"))));
  const m = Object.entries(shown)
    .map(([k, v]) => `${k} ${typeof v === "number" ? v.toFixed(3) : v}`).join(", ");
  $("run-info").textContent = `${r.model} on ${r.dataset}: ${r.users} users, ${r.items} items` +
    (m ? ` | test ${m}` : "");
  $("go").disabled = !r.recommends;
  if (!r.recommends) status(`${r.model} is a KG model: choose an item id for its neighbours.`);
  const body = await api("/users", { limit: 200 });
  const list = $("users");
  list.innerHTML = "";
  for (const u of body.users) list.appendChild(Object.assign(el("option"), { value: u }));
  if (!$("user").value && body.users.length) $("user").value = body.users[0];
}

async function recommend() {
  const user = $("user").value.trim();
  if (!user) { status("choose a user", true); return; }
  status("…");
  try {
    const body = await api("/recommend", {
      user, k: $("k").value, explain: $("explain").checked, exclude_seen: $("exclude").checked,
    });
    const ol = $("recs");
    ol.innerHTML = "";
    for (const r of body.items) {
      const li = el("li");
      li.className = "rec";
      li.appendChild(itemButton(r.item, r.name));
      li.appendChild(el("span", `${body.score} ${r.score.toFixed(4)}`, "score"));
      const lines = (r.explanation && r.explanation.lines) || [];
      if (r.explanation && r.explanation.available === false && r.explanation.note) {
        li.appendChild(el("div", r.explanation.note, "note"));
      }
      if (lines.length) {
        const ul = el("ul", undefined, "why");
        for (const line of lines) ul.appendChild(el("li", line));
        li.appendChild(ul);
      }
      ol.appendChild(li);
    }
    status(`top ${body.items.length} for user ${body.user}`);
  } catch (e) { status(e.message, true); }
}

async function showItem(item) {
  $("item-pane").hidden = false;
  $("item-name").textContent = item;
  $("item-name").dataset.item = item;
  try {
    const [sim, info] = await Promise.all([api("/similar", { item, k: 10 }), api("/item", { item })]);
    $("item-entity").textContent = info.entity === null ? "no KG entity" : `KG entity ${info.entity}`;
    $("similarity-note").textContent = `cosine of ${sim.similarity}`;
    const ol = $("similar");
    ol.innerHTML = "";
    for (const s of sim.items) {
      const li = el("li");
      li.className = "similar";
      li.appendChild(itemButton(s.item, s.name));
      li.appendChild(el("span", s.similarity.toFixed(3), "score"));
      ol.appendChild(li);
    }
    const ul = $("neighbours");
    ul.innerHTML = "";
    for (const f of info.neighbours) {
      ul.appendChild(el("li", f.line, "neighbour"));
    }
    if (!info.neighbours.length) ul.appendChild(el("li", "none", "note"));
  } catch (e) { status(e.message, true); }
}

$("go").addEventListener("click", recommend);
$("user").addEventListener("keydown", (e) => { if (e.key === "Enter") recommend(); });
$("run").addEventListener("change", () => runChanged().catch((e) => status(e.message, true)));
$("token").addEventListener("change", () => {
  localStorage.setItem("kgrec-token", $("token").value);
  loadRuns().catch((e) => status(e.message, true));
});
loadRuns().catch((e) => status(e.message, true));
