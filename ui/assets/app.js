// Baton's web UI: plain JavaScript, no dependencies. A hash router picks
// the view; each view fetches the node's JSON API and renders; the current
// view refreshes every second.
"use strict";

const REFRESH_MS = 1000;
let timer = null;
let rendering = false;

// ---- helpers ----

// The cluster's ACL token, once given: kept in this browser's local
// storage and sent with every call.
const tokenKey = "baton_token";
const token = () => localStorage.getItem(tokenKey) || "";

async function get(path) {
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  const r = await fetch(path, { cache: "no-store", headers });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401 || r.status === 403) {
    askToken(body.error || r.statusText);
    throw new Error(body.error || (r.status + " " + r.statusText));
  }
  if (!r.ok) throw new Error(body.error || (r.status + " " + r.statusText));
  return body;
}

// askToken shows the token form: the cluster's ACLs are on and the call
// had no token, or one that is not valid (or not allowed).
function askToken(why) {
  let f = document.getElementById("login");
  if (!f) {
    f = document.createElement("form");
    f.id = "login";
    f.innerHTML = `<p>This cluster needs an ACL token (a read token is enough to watch it).</p>
      <p class="muted" id="login-why"></p>
      <input id="login-token" type="password" autocomplete="off" placeholder="token secret" size="40">
      <button type="submit">Use token</button>`;
    f.addEventListener("submit", ev => {
      ev.preventDefault();
      localStorage.setItem(tokenKey, document.getElementById("login-token").value.trim());
      f.remove();
      render();
    });
    document.querySelector("main").before(f);
  }
  document.getElementById("login-why").textContent = why || "";
}

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

const num = v => Number(v || 0);

function ago(unixNano) {
  const n = num(unixNano);
  if (!n) return "—";
  return dur(Date.now() - n / 1e6) + " ago";
}

function dur(ms) {
  ms = Math.max(0, Math.round(ms));
  if (ms < 1000) return ms + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

function bytes(n) {
  n = num(n);
  if (n < 0) return "—";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function time(unixNano) {
  const n = num(unixNano);
  return n ? new Date(n / 1e6).toLocaleTimeString() : "—";
}

function jobState(s) {
  return String(s || "").replace("JOB_STATE_", "").toLowerCase();
}

function badge(state) {
  return `<span class="badge ${esc(state)}">${esc(state.replace(/_/g, " "))}</span>`;
}

function bar(done, total, state) {
  const pct = total > 0 ? Math.min(100, 100 * done / total) : (state === "succeeded" ? 100 : 0);
  return `<div class="bar ${esc(state)}" title="${done} of ${total}"><span style="width:${pct}%"></span><em>${done}/${total}</em></div>`;
}

// stageState names a stage's state for people: an idle stage whose
// outputs are all there is complete.
function stageState(st) {
  return st.state === "idle" && num(st.tasks) > 0 && num(st.available) >= num(st.tasks) ? "complete" : String(st.state || "");
}

function jobDuration(j) {
  const start = num(j.submitted_unix_nano) / 1e6;
  const end = num(j.ended_unix_nano) ? num(j.ended_unix_nano) / 1e6 : Date.now();
  return start ? dur(end - start) : "—";
}

// ---- node header ----

async function header() {
  try {
    const st = await get("/v1/status");
    const me = st.node || {};
    const role = String(me.state || "").toLowerCase();
    let html = `node <b>${esc(me.id)}</b> · ${badge(role || "unknown")} · term ${esc(me.term)}`;
    const banner = document.getElementById("banner");
    const notes = [];
    if (st.warning) notes.push(`<span id="churn-warning"><b>Warning:</b> ${esc(st.warning)}.</span>`);
    if (role !== "leader") {
      const leader = (st.peers || []).find(p => p.leader);
      const link = leader && leader.http_addr ? `<a href="http://${esc(leader.http_addr)}/ui/${esc(location.hash)}">${esc(leader.id)}</a>` : esc(st.leader_id || "none");
      html += ` · leader ${link}`;
      notes.push(`This follower shows its replica of the state; running tasks and heartbeats are known to the leader (${link}).`);
    }
    banner.innerHTML = notes.join("<br>");
    banner.hidden = notes.length === 0;
    document.getElementById("node").innerHTML = html;
  } catch (e) {
    document.getElementById("node").textContent = "status unavailable: " + e.message;
  }
}

// ---- views ----

async function viewJobs() {
  const { jobs = [] } = await get("/v1/jobs");
  jobs.sort((a, b) => num(b.id) - num(a.id));
  const rows = jobs.map(j => {
    const s = jobState(j.state);
    return `<tr data-job="${esc(j.id)}">
      <td class="num"><a href="#/job/${esc(j.id)}">${esc(j.id)}</a></td>
      <td><a href="#/job/${esc(j.id)}">${esc(j.name || "(unnamed)")}</a></td>
      <td>${esc(j.pool || "default")}</td>
      <td>${badge(s)}${j.released ? ' <span class="muted">released</span>' : ""}</td>
      <td>${bar(num(j.finished), num(j.tasks), s)}</td>
      <td class="num">${jobDuration(j)}</td>
      <td class="num">${num(j.task_failures)}</td>
      <td>${time(j.submitted_unix_nano)}</td>
      <td class="msg">${esc(j.message)}</td></tr>`;
  }).join("");
  return `<h1>Jobs</h1><p class="muted">${jobs.length} retained; ${jobs.filter(j => jobState(j.state) === "running").length} running.</p>
    <table id="jobs"><thead><tr><th class="num">Id</th><th>Name</th><th>Pool</th><th>State</th><th>Progress (result partitions)</th>
    <th class="num">Duration</th><th class="num">Task failures</th><th>Submitted</th><th>Message</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="9" class="muted">No jobs.</td></tr>'}</tbody></table>`;
}

async function viewJob(id) {
  const j = await get("/v1/jobs/" + encodeURIComponent(id));
  const s = jobState(j.state);
  const stages = j.stages || [];
  const rows = stages.map(st => `<tr data-stage="${esc(st.id)}">
    <td class="num"><a href="#/stage/${esc(st.id)}">${esc(st.id)}</a></td><td>${esc(st.name)}</td><td>${st.map ? "map" : "result"}${coalescedNote(st)}</td>
    <td>${badge(stageState(st))}</td><td>${bar(num(st.available), num(st.tasks), st.state)}</td>
    <td class="num">${num(st.attempt) < 0 ? "—" : num(st.attempt)}</td><td class="num">${num(st.failed_attempts)}</td>
    <td>${esc((st.parents || []).join(", ") || "—")}</td></tr>`).join("");
  return `<h1>Job ${esc(j.id)} ${esc(j.name || "")} ${badge(s)}</h1>
    <div class="card"><dl class="kv">
      <dt>Progress</dt><dd>${bar(num(j.finished), num(j.tasks), s)}</dd>
      <dt>Action</dt><dd>${esc(j.action)}</dd>
      <dt>Pool</dt><dd>${esc(j.pool || "default")}</dd>
      ${j.group ? `<dt>Group</dt><dd>${esc(j.group)}</dd>` : ""}
      ${num(j.adaptive_target) ? `<dt>Adaptive</dt><dd>reducer partitions coalesced to about ${bytes(j.adaptive_target)} a task</dd>` : ""}
      ${j.map_stage ? `<dt>Map stage</dt><dd id="map-statistics">${mapStatistics(j.map_statistics)}</dd>` : ""}
      <dt>Submitted</dt><dd>${time(j.submitted_unix_nano)} · ${jobDuration(j)}</dd>
      <dt>Task ends</dt><dd>${num(j.task_successes)} successes, ${num(j.task_failures)} failures</dd>
      ${j.message ? `<dt>Message</dt><dd class="msg">${esc(j.message)}</dd>` : ""}
    </dl></div>
    ${accumulatorsTable(j)}
    <h2>Stages</h2>
    ${stages.length ? dagSVG(stages) : '<p class="muted">The job holds no stages any more (it was released, or needed none).</p>'}
    <table id="stages"><thead><tr><th class="num">Stage</th><th>Name</th><th>Kind</th><th>State</th><th>Progress</th>
    <th class="num">Attempt</th><th class="num">Failed attempts</th><th>Parents</th></tr></thead><tbody>${rows}</tbody></table>`;
}

// accumulatorsTable shows what a job's tasks counted: its partitions'
// successes (each partition once), then its failed attempts, apart.
function accumulatorsTable(j) {
  const ok = j.accumulators || [], failed = j.failed_accumulators || [];
  if (!ok.length && !failed.length) return "";
  const kind = k => String(k || "").replace("ACCUMULATOR_KIND_", "").toLowerCase().replace(/_float$/, "Float");
  const value = a => /FLOAT/.test(String(a.kind)) ? String(a.float_value ?? 0) : String(a.int_value ?? 0);
  const row = (a, from) => `<tr><td>${esc(a.name)}</td><td>${esc(kind(a.kind))}</td><td class="num">${esc(value(a))}</td>
    <td class="num">${num(a.tasks)} ${from}</td></tr>`;
  const dropped = num(j.dropped_accumulator_updates);
  return `<h2>Accumulators</h2><table id="accumulators"><thead><tr><th>Name</th><th>Kind</th><th class="num">Value</th>
    <th class="num">From</th></tr></thead><tbody>${ok.map(a => row(a, "partitions")).join("")}${failed.map(a => row(a, "failed attempts")).join("")}</tbody></table>
    ${dropped ? `<p class="muted">${dropped} updates of accumulators past the 256 a job keeps were dropped.</p>` : ""}`;
}

// dagSVG lays the stages out in columns by depth (parents to the left)
// and draws shuffle edges from each parent to its children.
function dagSVG(stages) {
  const byId = new Map(stages.map(s => [String(s.id), s]));
  const depth = new Map();
  const d = s => {
    const k = String(s.id);
    if (depth.has(k)) return depth.get(k);
    depth.set(k, 0);
    let v = 0;
    for (const p of s.parents || []) {
      const ps = byId.get(String(p));
      if (ps) v = Math.max(v, d(ps) + 1);
    }
    depth.set(k, v);
    return v;
  };
  stages.forEach(d);
  const cols = [];
  for (const s of stages) {
    const c = depth.get(String(s.id));
    (cols[c] = cols[c] || []).push(s);
  }
  const W = 200, H = 78, GX = 70, GY = 24, PAD = 16;
  const pos = new Map();
  cols.forEach((col, c) => col.forEach((s, r) => pos.set(String(s.id), { x: PAD + c * (W + GX), y: PAD + r * (H + GY) })));
  const width = PAD * 2 + cols.length * W + (cols.length - 1) * GX;
  const height = PAD * 2 + Math.max(...cols.map(c => c.length)) * (H + GY) - GY;
  let edges = "", boxes = "";
  for (const s of stages) {
    const to = pos.get(String(s.id));
    for (const p of s.parents || []) {
      const from = pos.get(String(p));
      if (!from) continue;
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x - 4, y2 = to.y + H / 2, mx = (x1 + x2) / 2;
      edges += `<path class="edge" d="M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}"/>`;
      edges += `<text class="edgelabel" x="${mx}" y="${(y1 + y2) / 2 - 4}" text-anchor="middle">shuffle</text>`;
    }
    const done = num(s.available), total = num(s.tasks);
    const cls = s.state === "running" ? "running" : s.state === "failed" ? "failed" : (total && done >= total ? "done" : "");
    const pct = total ? Math.min(1, done / total) : 0;
    const retry = num(s.attempt) > 0 || num(s.failed_attempts) > 0
      ? `<text class="retry" x="10" y="${H - 8}">attempt ${num(s.attempt)}${num(s.failed_attempts) ? ", " + num(s.failed_attempts) + " failed" : ""}</text>` : "";
    boxes += `<g class="stage ${cls}" data-stage="${esc(s.id)}" transform="translate(${to.x},${to.y})">
      <a href="#/stage/${esc(s.id)}"><rect class="box" width="${W}" height="${H}" rx="6"/>
      <text class="title" x="10" y="18">Stage ${esc(s.id)} · ${s.map ? "map" : "result"}</text>
      <text x="10" y="34">${esc(String(s.name).slice(0, 28))}</text>
      <rect class="track" x="10" y="42" width="${W - 20}" height="8" rx="4"/>
      <rect class="fill" x="10" y="42" width="${(W - 20) * pct}" height="8" rx="4"/>
      <text x="${W - 10}" y="${H - 8}" text-anchor="end">${done}/${total} · ${esc(stageState(s))}</text>${retry}</a></g>`;
  }
  return `<svg class="dag" id="dag" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
    <path d="M0,0 L10,5 L0,10 z" fill="#7c8699"/></marker></defs>${edges}${boxes}</svg>`;
}

// coalescedNote says how many reducer partitions adaptive coalescing
// merged into a stage's tasks.
function coalescedNote(st) {
  const c = st.coalesced || [];
  return c.length ? ` <span class="muted">(${num(st.reducers)} partitions coalesced into ${c.length})</span>` : "";
}

// mapStatistics describes a map-stage job's shuffle (its
// MapOutputStatistics), while the job holds it.
function mapStatistics(m) {
  if (!m) return "its shuffle was released";
  return `shuffle ${esc(m.shuffle)}: ${num(m.maps_registered)} of ${num(m.maps)} map outputs, ${bytes(m.total_bytes)} for ${num(m.reducers)} reducers` +
    ((m.reducer_bytes || []).length ? ` (${reducerSummary(m)})` : "");
}

// reducerSummary says what a map stage's shuffle holds for its reducers
// (the state's MapOutputStatistics): the total, and how skewed it is.
function reducerSummary(d) {
  const rb = (d.reducer_bytes || []).map(num);
  if (!rb.length) return "—";
  const total = rb.reduce((a, b) => a + b, 0);
  const sorted = [...rb].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const most = sorted[sorted.length - 1], at = rb.indexOf(most);
  const skew = median > 0 ? ` (${(most / median).toFixed(1)}× the median)` : "";
  return `${bytes(total)} for ${rb.length} reducers from ${num(d.maps_registered)} map outputs; the largest, reducer ${at}, ${bytes(most)}${skew}`;
}

async function viewStage(id) {
  const d = await get("/v1/stages/" + encodeURIComponent(id));
  const s = d.stage || {};
  const tasks = d.tasks || [];
  // Counts cover every attempt; the table shows the first page of them.
  const counts = d.task_counts || {};
  const summary = Object.keys(counts).sort().map(k => `${badge(k)} ${num(counts[k])}`).join(" ") || "none yet";
  const total = num(d.tasks_total);
  const shown = total > tasks.length ? `<p class="muted" id="tasks-paged">Showing the first ${tasks.length} of ${total} attempts.</p>` : "";
  const rows = tasks.map(t => {
    const result = s.map ? (num(t.map_bytes) ? bytes(t.map_bytes) + " shuffle" : "—")
      : (num(t.result_size) || t.state === "success" ? bytes(t.result_size) + (t.indirect ? " indirect" : " direct") : "—");
    return `<tr><td class="num">${esc(t.partition)}</td><td class="num">${esc(t.task)}</td><td class="num">${esc(t.attempt)}${t.speculative ? " (copy)" : ""}</td>
      <td class="num">${esc(t.stage_attempt)}</td><td>${esc(t.executor)}</td><td>${badge(t.state)}</td>
      <td class="num">${num(t.duration_ms) ? dur(num(t.duration_ms)) : (t.state === "running" || t.state === "success" ? "< 1 ms" : "—")}</td><td>${result}</td>
      <td class="num">${num(t.spilled_bytes) ? bytes(t.spilled_bytes) : "—"}</td>
      <td class="msg">${esc(t.message)}${t.ignored ? `<br><span class="muted">ignored: ${esc(t.ignored)}</span>` : ""}</td></tr>`;
  }).join("");
  const jobs = (d.jobs || []).map(j => `<a href="#/job/${esc(j)}">${esc(j)}</a>`).join(", ");
  return `<h1>Stage ${esc(s.id)} ${esc(s.name)} ${badge(stageState(s))}</h1>
    <div class="card"><dl class="kv">
      <dt>Kind</dt><dd>${s.map ? "shuffle map stage (shuffle " + esc(s.shuffle) + ")" : "result stage"}</dd>
      <dt>Jobs</dt><dd>${jobs || "—"}</dd>
      <dt>Progress</dt><dd>${bar(num(s.available), num(s.tasks), s.state)}</dd>
      <dt>Attempt</dt><dd>${num(s.attempt)} (${num(s.failed_attempts)} ended by fetch failures)</dd>
      <dt>Task attempts</dt><dd>${summary}</dd>
      ${s.map ? `<dt>Shuffle output</dt><dd id="reducers">${reducerSummary(d)}</dd>` : ""}
      ${(s.coalesced || []).length ? `<dt>Adaptive</dt><dd id="coalesced">${num(s.reducers)} reducer partitions coalesced into ${s.coalesced.length} tasks (first partitions ${esc(s.coalesced.slice(0, 20).join(", "))}${s.coalesced.length > 20 ? ", …" : ""})</dd>` : ""}
    </dl></div>
    ${d.history_complete ? "" : '<p class="muted">This node started after the stage did: attempts that ended before are missing.</p>'}
    ${shown}<table id="tasks"><thead><tr><th class="num">Partition</th><th class="num">Task</th><th class="num">Attempt</th><th class="num">Stage attempt</th>
    <th>Executor</th><th>State</th><th class="num">Duration</th><th>Result</th><th class="num">Spill</th><th>Reason</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="10" class="muted">No attempts seen by this node.</td></tr>'}</tbody></table>`;
}

async function viewExecutors() {
  const { executors = [] } = await get("/v1/executors");
  const rows = executors.map(e => `<tr data-executor="${esc(e.id)}"><td>${esc(e.id)}</td><td>${esc(e.addr)}</td>
    <td>${badge(e.alive ? "alive" : "lost")}</td><td class="num">${esc(e.cores)}</td><td class="num">${esc(e.running_tasks)}</td>
    <td class="num">${num(e.block_bytes) >= 0 ? bytes(e.block_bytes) : "—"}</td><td class="num">${num(e.shuffles) >= 0 ? esc(e.shuffles) : "—"}</td>
    <td>${ago(e.last_heartbeat_unix_nano)}</td><td>${time(e.registered_unix_nano)}</td>
    <td class="msg">${e.alive ? "" : time(e.lost_unix_nano) + ": " + esc(e.lost_reason)}</td></tr>`).join("");
  const alive = executors.filter(e => e.alive);
  return `<h1>Executors</h1><p class="muted">${alive.length} alive of ${executors.length}; ${alive.reduce((n, e) => n + num(e.cores), 0)} slots.</p>
    <table id="executors"><thead><tr><th>Id</th><th>Address</th><th>State</th><th class="num">Slots</th><th class="num">Running</th>
    <th class="num">Blocks</th><th class="num">Shuffles</th><th>Last heartbeat</th><th>Registered</th><th>Lost</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="10" class="muted">No executors.</td></tr>'}</tbody></table>`;
}

// viewStorage is Spark UI's Storage tab: the persisted datasets, how much
// of each is kept and where.
async function viewStorage() {
  const { datasets = [] } = await get("/v1/cached");
  const rows = datasets.map(d => {
    const ex = Object.entries(d.executors || {}).sort().map(([e, n]) => `${esc(e)} (${num(n)})`).join(", ");
    return `<tr data-dataset="${esc(d.key)}"><td>${esc(d.name || "—")}</td><td><code>${esc(d.key)}</code></td>
      <td>${bar(num(d.cached), num(d.partitions), num(d.cached) === num(d.partitions) ? "complete" : "running")}</td>
      <td class="num">${bytes(d.bytes)}</td><td>${ex || "—"}</td><td>${time(d.created_unix_nano)}</td></tr>`;
  }).join("");
  return `<h1>Storage</h1><p class="muted">Datasets a plan persisted ("persist": true): their computed partitions stay in the executors' block stores, and later jobs over the same lineage read them there. <code>batonctl cache unpersist NAME</code> frees them.</p>
    <table id="storage"><thead><tr><th>Dataset</th><th>Key</th><th>Cached partitions</th><th class="num">Size</th><th>Executors</th><th>Since</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="6" class="muted">No persisted datasets.</td></tr>'}</tbody></table>`;
}

async function viewQuorum() {
  const st = await get("/v1/status");
  const peers = st.peers || [];
  const rows = peers.map(p => {
    const up = p.reachable;
    const v = x => up ? esc(x) : "—";
    return `<tr data-peer="${esc(p.id)}"><td>${esc(p.id)}${p.leader ? " ★" : ""}</td><td>${badge(up ? String(p.state).toLowerCase() : "unreachable")}</td>
      <td>${p.voter ? "yes" : "no"}</td><td>${esc(p.raft_addr)}</td><td>${p.http_addr ? `<a href="http://${esc(p.http_addr)}/ui/">${esc(p.http_addr)}</a>` : "—"}</td>
      <td class="num">${v(p.term)}</td><td class="num">${v(p.commit_index)}</td><td class="num">${v(p.applied_index)}</td>
      <td class="num">${v(p.last_snapshot_index)}</td><td class="num">${!up ? "—" : num(p.last_contact_ms) < 0 ? "never" : dur(num(p.last_contact_ms))}</td></tr>`;
  }).join("");
  return `<h1>Quorum</h1><div class="card"><dl class="kv"><dt>Leader</dt><dd>${esc(st.leader_id || "none")}</dd>
    <dt>Term</dt><dd>${esc((st.node || {}).term)}</dd><dt>Commit index</dt><dd>${esc((st.node || {}).commit_index)}</dd>
    <dt>Leader changes</dt><dd id="leader-changes">${num(st.leader_changes)} in the last ${dur(1000 * num(st.leader_changes_window_s))} seen by this node</dd></dl></div>
    <table id="peers"><thead><tr><th>Peer</th><th>State</th><th>Voter</th><th>Raft address</th><th>UI</th><th class="num">Term</th>
    <th class="num">Commit</th><th class="num">Applied</th><th class="num">Snapshot</th><th class="num">Last contact</th></tr></thead><tbody>${rows}</tbody></table>`;
}

async function viewLeaders() {
  const { takeovers = [] } = await get("/v1/leaders");
  const rows = takeovers.slice().reverse().map(t => {
    const took = (num(t.ready_unix_nano) - num(t.won_unix_nano)) / 1e6;
    return `<tr><td class="num">${esc(t.term)}</td><td>${esc(t.id)}</td><td>${time(t.won_unix_nano)}</td>
      <td class="num">${dur(took)}</td><td class="num">${esc(t.executors_back)} of ${esc(t.executors)}</td></tr>`;
  }).join("");
  return `<h1>Leader history</h1><p class="muted">Each takeover: when the new leader's driver took over (after its election and barrier), and how long until it began scheduling (every executor back, or its grace period over).</p>
    <table id="leaders"><thead><tr><th class="num">Term</th><th>Leader</th><th>Took over at</th><th class="num">Took over in</th><th class="num">Executors back</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="5" class="muted">No takeover recorded yet.</td></tr>'}</tbody></table>`;
}

// ---- router ----

const routes = [
  [/^#\/job\/(\d+)$/, m => viewJob(m[1]), "jobs"],
  [/^#\/stage\/(\d+)$/, m => viewStage(m[1]), "jobs"],
  [/^#\/executors$/, viewExecutors, "executors"],
  [/^#\/storage$/, viewStorage, "storage"],
  [/^#\/quorum$/, viewQuorum, "quorum"],
  [/^#\/leaders$/, viewLeaders, "leaders"],
  [/^.*$/, viewJobs, "jobs"],
];

async function render() {
  if (rendering) return;
  rendering = true;
  const hash = location.hash || "#/jobs";
  const [re, view, nav] = routes.find(([re]) => re.test(hash));
  document.querySelectorAll("[data-nav]").forEach(a => a.classList.toggle("active", a.dataset.nav === nav));
  try {
    const html = await view(hash.match(re));
    document.getElementById("view").innerHTML = html;
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("view").innerHTML = `<p class="muted">Could not load: ${esc(e.message)}</p>`;
  } finally {
    rendering = false;
  }
  header();
}

window.addEventListener("hashchange", render);
render();
timer = setInterval(render, REFRESH_MS);
