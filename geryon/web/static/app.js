// The monitors' page: reads /api/sched and /api/cluster (the trees, as geryon web reads
// them), again whenever /api/events says a tree changed, and writes ctl messages back.
// Text from the trees is only ever set as textContent, never parsed as HTML.
"use strict";

const TOKEN = document.querySelector('meta[name="geryon-token"]').content;
const $ = (sel) => document.querySelector(sel);
let sched = null;        // the last /api/sched answer
let checked = new Set(); // node names ticked in the Node Monitor

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) el.setAttribute(k, v);
    else if (k in el) el[k] = v;
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, options = {}) {
  const headers = Object.assign({"X-Geryon-Token": TOKEN}, options.headers || {});
  const r = await fetch(path, Object.assign({}, options, {headers, credentials: "same-origin"}));
  let body = {};
  try { body = await r.json(); } catch (e) { body = {error: `${path}: ${r.status} ${r.statusText}`}; }
  return {ok: r.ok, status: r.status, body};
}

function post(path, message) {
  return api(path, {method: "POST", body: JSON.stringify({message}),
                    headers: {"Content-Type": "application/json"}});
}

// -- banners: a tree that cannot be reached is said plainly --------------------------------

function banner(which, text) {
  let el = document.getElementById(`banner-${which}`);
  if (!text) { if (el) el.remove(); return; }
  if (!el) {
    el = h("p", {id: `banner-${which}`, class: "banner", role: "alert"});
    $("#banners").append(el);
  }
  el.textContent = text;
}

function showError(sel, text) {
  const el = $(sel);
  el.textContent = text || "";
  el.hidden = !text;
}

// -- formatting ------------------------------------------------------------------------------

function ago(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor(seconds % 3600 / 60)} min`;
}

function clock(t) {
  return t ? new Date(t * 1000).toLocaleTimeString([], {hour12: false}) : "";
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function bar(percent, label) {
  const fill = h("div", {class: "fill"});
  fill.style.width = `${percent}%`;  // through the CSSOM: the page's CSP allows no inline style
  return h("div", {class: "bar", role: "progressbar", "aria-valuenow": percent,
                   "aria-valuemin": 0, "aria-valuemax": 100, "data-percent": percent},
           fill, h("span", {text: label}));
}

// -- Job Monitor -------------------------------------------------------------------------------

function jobRow(job, now) {
  const m = job.monitor || {};
  const done = m.complete ?? job.complete, total = m.total ?? job.total;
  const percent = total ? Math.floor(100 * done / total) : 0;
  const state = m.state || job.state;
  const actions = h("div", {class: "actions"});
  if (state === "running") {
    actions.append(h("button", {text: "stop", "data-act": "stop",
                                onclick: () => jobCtl(job.id, "stop")}));
  } else if (state === "stopped" || state === "new") {
    actions.append(h("button", {text: "continue", "data-act": "continue",
                                onclick: () => jobCtl(job.id, "start")}));
  }
  if (state !== "deleted") {
    actions.append(h("button", {text: "delete", class: "danger", "data-act": "delete",
                                onclick: () => {
                                  if (confirm(`Delete job ${job.id}?`)) jobCtl(job.id, "delete");
                                }}));
  }
  if (state !== "complete" && state !== "deleted") {
    const input = h("input", {size: 5, value: job.priority, "aria-label": "priority",
                              name: `priority-${job.id}`});
    actions.append(h("form", {class: "priority", onsubmit: (e) => {
      e.preventDefault(); jobCtl(job.id, `priority ${input.value}`);
    }}, input, h("button", {text: "set priority", "data-act": "priority"})));
  }
  if (done > 0) {
    actions.append(h("a", {href: `/api/jobs/${job.id}/result`, text: "result",
                           download: `job${job.id}.result`, class: "button"}));
  }
  const counts = [`running ${m.running ?? "?"}`, `failed ${m.failed ?? 0}`,
                  `failures ${m.failures ?? 0}`, `duplicate ${m.duplicate ?? 0}`,
                  `disconnected ${m.disconnected ?? 0}`];
  const what = job.description || job.argv.join(" ");
  return h("article", {class: `row job state-${state}`, "data-job": job.id, "data-state": state},
    h("div", {class: "id"}, h("b", {text: `job ${job.id}`}),
      h("span", {class: `badge ${state}`, text: state})),
    h("div", {class: "what"},
      h("div", {class: "desc", text: what, title: job.argv.join(" ")}),
      h("div", {class: "sub", text: `${job.owner} · priority ${job.priority}` +
                                    (job.duration !== undefined ? ` · ${ago(job.duration)}` : "")})),
    h("div", {class: "progress"}, bar(percent, `${done} / ${total} (${percent}%)`),
      h("div", {class: "sub counts", text: counts.join(" · ")})),
    h("div", {class: "why sub", text: !["running", "complete"].includes(state) && job.why ? job.why : ""}),
    actions);
}

function renderJobs() {
  const list = $("#job-list");
  if (!sched) return;
  const jobs = [...sched.jobs].sort((a, b) => b.id - a.id);
  list.replaceChildren(...(jobs.length ? jobs.map((j) => jobRow(j, sched.now))
                                       : [h("p", {class: "empty", text: "No jobs yet."})]));
  const select = $("#group-form select");
  const keep = select.value;
  select.replaceChildren(h("option", {value: "", text: "all jobs (working set)"}),
    ...jobs.filter((j) => j.state !== "complete" && j.state !== "deleted")
           .map((j) => h("option", {value: j.id, text: `job ${j.id}` +
                                    (j.group ? ` (${[].concat(j.group).join(" ")})` : "")})));
  select.value = [...select.options].some((o) => o.value === keep) ? keep : "";
}

async function jobCtl(id, message) {
  const r = await post(`/api/jobs/${id}/ctl`, message);
  showError("#job-error", r.ok ? "" : r.body.error);
  refresh("sched");
}

async function newJob(e) {
  e.preventDefault();
  const form = e.target;
  const data = new FormData(form);
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  showError("#job-error", "");
  $("#job-made").hidden = true;
  try {
    const r = await api("/api/jobs", {method: "POST", body: data});
    if (!r.ok) { showError("#job-error", r.body.error); return; }
    $("#job-made").textContent = `Made job ${r.body.id}.`;
    $("#job-made").hidden = false;
    refresh("sched");
  } finally {
    button.disabled = false;
  }
}

function chooseKind() {
  const kind = $('#job-form input[name="kind"]:checked').value;
  for (const el of document.querySelectorAll("#job-form .fields.filesplit, #job-form .fields.job")) {
    el.hidden = !el.classList.contains(kind);
    for (const input of el.querySelectorAll("input, textarea")) input.disabled = el.hidden;
  }
}

// -- Node Monitor ------------------------------------------------------------------------------

function inGroup(group, name) {
  return group === "all" || (Array.isArray(group) && group.includes(name));
}

const SIZES = new Set(["memory", "cachesize"]);  // node attributes that are byte counts

function nodeRow(node, now) {
  let state = node.state;
  let when = "";
  if (state === "disconnected") when = `since ${clock(node.since)} (${ago(now - node.since)} ago)`;
  else if (state === "blacklisted") when = `until ${clock(node.blacklisted)}`;
  else when = `${state} for ${ago(now - node.since)}`;
  const working = inGroup(sched.group, node.name);
  const actions = h("div", {class: "actions"});
  actions.append(working
    ? h("button", {text: "suspend", "data-act": "suspend",
                   title: "take it out of the working set (group del)",
                   onclick: () => adminCtl(`group del ${node.name}`)})
    : h("button", {text: "resume", "data-act": "resume",
                   title: "put it back in the working set (group add)",
                   onclick: () => adminCtl(`group add ${node.name}`)}));
  if (state === "blacklisted") {
    actions.append(h("button", {text: "un-blacklist", "data-act": "unblacklist",
                                onclick: () => adminCtl(`unblacklist ${node.name}`)}));
  }
  if (state === "disconnected") {
    actions.append(h("button", {text: "delete", class: "danger", "data-act": "delnode",
                                onclick: () => adminCtl(`delnode ${node.name}`)}));
  }
  const attrs = Object.entries(node.attrs).filter(([k]) => !k.startsWith("jobtype"))
    .map(([k, v]) => `${k} ${SIZES.has(k) && /^[0-9]+$/.test(v) ? bytes(Number(v)) : v}`)
    .join(" · ");
  const types = Object.entries(node.attrs).filter(([k]) => k.startsWith("jobtype"))
    .map(([, v]) => v).join(" ");
  const box = h("input", {type: "checkbox", "aria-label": `select ${node.name}`,
                          checked: checked.has(node.name), onchange: (e) => {
                            if (e.target.checked) checked.add(node.name);
                            else checked.delete(node.name);
                          }});
  return h("article", {class: `row node state-${state}`, "data-node": node.name,
                       "data-state": state},
    h("div", {class: "id"}, h("label", {}, box, h("b", {text: node.name})),
      h("span", {class: `badge ${state}`, text: state}),
      working ? null : h("span", {class: "badge suspended", text: "suspended"})),
    h("div", {class: "what"}, h("div", {class: "sub", text: when}),
      h("div", {class: "sub", text: attrs}),
      types ? h("div", {class: "sub", text: `task types: ${types}`}) : null),
    h("div", {class: "counts"},
      h("span", {text: `completed ${node.completed}`}), " · ",
      h("span", {text: `failed ${node.failed}`}), " · ",
      h("span", {text: `connections ${node.connected}`})),
    h("div", {class: "tasks sub", text: node.tasks.length ? `tasks ${node.tasks.join(" ")}` : "no task"}),
    actions);
}

function renderNodes() {
  if (!sched) return;
  const g = sched.group;
  $("#global-group").textContent = Array.isArray(g) ? g.join(" ") : g;
  const names = new Set(sched.nodes.map((n) => n.name));
  checked = new Set([...checked].filter((n) => names.has(n)));
  $("#node-list").replaceChildren(...(sched.nodes.length
    ? sched.nodes.map((n) => nodeRow(n, sched.now))
    : [h("p", {class: "empty", text: "No worker has connected."})]));
}

async function adminCtl(message) {
  const r = await post("/api/ctl", message);
  showError("#node-error", r.ok ? "" : r.body.error);
  refresh("sched");
}

async function groupCtl(verb) {
  const target = $("#group-form select").value;
  const names = ["all", "none"].includes(verb) ? [] : [...checked];
  if (!["all", "none"].includes(verb) && !names.length) {
    showError("#node-error", "Tick the nodes first.");
    return;
  }
  const message = ["group", verb, ...names].join(" ");
  const r = target ? await post(`/api/jobs/${target}/ctl`, message) : await post("/api/ctl", message);
  showError("#node-error", r.ok ? "" : r.body.error);
  refresh("sched");
}

// -- Cluster -----------------------------------------------------------------------------------

function mrDetails(attrs) {
  // The driver's entry: byte counts as sizes, its start as a time, empty values left out.
  return Object.entries(attrs).filter(([, v]) => v !== "").map(([k, v]) => {
    if ((k === "in" || k === "out") && /^[0-9]+$/.test(v)) return `${k} ${bytes(Number(v))}`;
    if (k === "started" && /^[0-9]+$/.test(v)) return `started ${clock(Number(v))}`;
    return `${k} ${v}`;
  }).join(" · ");
}

function renderCluster(c) {
  $("#mr-list").replaceChildren(...(c.mapreduce.length ? c.mapreduce.map((j) =>
    h("article", {class: `row mr state-${j.state}`, "data-mr": j.job, "data-phase": j.phase,
                  "data-state": j.state},
      h("div", {class: "id"}, h("b", {text: j.job}),
        h("span", {class: `badge ${j.state}`, text: j.state}),
        j.phase !== j.state ? h("span", {class: "badge", text: j.phase}) : null),
      h("div", {class: "progress"}, bar(j.percent, `${j.done} / ${j.total} (${j.percent}%)`)),
      h("div", {class: "sub", text: mrDetails(j.attrs)})))
    : [h("p", {class: "empty", text: "No mapreduce job is registered."})]));
  showError("#disks-error", c.disks_error);
  $("#disk-list").replaceChildren(...(c.disks.length ? c.disks.map((d) =>
    h("article", {class: "row disk" + (d.replica_of ? " replica" : ""), "data-disk": d.name,
                  "data-state": d.state},
      h("div", {class: "id"}, h("b", {text: d.name}),
        h("span", {class: `badge ${d.state.split(/[ ,:]/)[0]}`, text: d.state})),
      h("div", {class: "what sub", text: `${d.host}!${d.chunk}` +
        (d.replica_of ? ` · replica of ${d.replica_of}` : "") +
        (d.replicas.length ? ` · replicas ${d.replicas.join(" ")}` : "")}),
      h("div", {class: "progress"}, d.size
        ? bar(d.fill, `${bytes(d.used)} of ${bytes(d.size)} (${d.fill}%)`)
        : h("span", {class: "sub", text: "fill unknown: chunk not served"}))))
    : [h("p", {class: "empty", text: `No disks: ${c.ndb} names none and none is registered.`})]));
  $("#cpu-list").replaceChildren(...(c.cpus.length ? c.cpus.map((p) =>
    h("article", {class: "row cpu", "data-cpu": p.host},
      h("div", {class: "id"}, h("b", {text: p.host})),
      h("div", {class: "what sub", text: p.addr}),
      h("div", {class: "counts", text: `ncpu ${p.ncpu} · load ${p.load} · running ${p.running}` +
                                     ` · blocks ${p.blocks} · failed ${p.failed}`})))
    : [h("p", {class: "empty", text: "No cpu service is registered."})]));
  $("#chunk-list").replaceChildren(...(c.chunk_servers.length ? c.chunk_servers.map((s) =>
    h("article", {class: "row chunks", "data-host": s.host},
      h("div", {class: "id"}, h("b", {text: s.host})),
      h("div", {class: "counts", text: `${s.chunks} chunks` +
                                     (s.replicas ? ` (${s.replicas} replicas)` : "")}),
      h("div", {class: "progress"}, bar(s.size ? Math.floor(100 * s.used / s.size) : 0,
                                        `${bytes(s.used)} of ${bytes(s.size)}`))))
    : [h("p", {class: "empty", text: "No chunk server is registered."})]));
  $("#service-count").textContent = c.services.length;
  $("#service-list").replaceChildren(...c.services.map((s) =>
    h("div", {class: "service"}, h("b", {text: s.name}), " ",
      h("span", {text: Object.entries(s.attrs).map(([k, v]) => `${k}=${v}`).join(" ")}))));
}

// -- reading the trees, live ---------------------------------------------------------------------

const pending = {};
function refresh(which) {
  // Gather bursts: one read of a tree at a time, and one more after it if asked meanwhile.
  const p = pending[which] || (pending[which] = {busy: false, again: false});
  if (p.busy) { p.again = true; return; }
  p.busy = true;
  load(which).finally(() => {
    p.busy = false;
    if (p.again) { p.again = false; refresh(which); }
  });
}

async function load(which) {
  let r;
  try {
    r = await api(`/api/${which}`);
  } catch (e) {
    banner("server", "The monitor server cannot be reached; is geryon web still running?");
    return;
  }
  banner("server", "");
  if (!r.ok) {
    banner(which, `${which === "sched" ? "Scheduler" : "Registry"} unreachable: ${r.body.error}`);
    return;
  }
  banner(which, "");
  if (which === "sched") { sched = r.body; renderJobs(); renderNodes(); }
  else renderCluster(r.body);
}

function onMonitor(msg) {
  if (!sched) return;
  const job = sched.jobs.find((j) => j.id === msg.id);
  if (!job) return;
  job.monitor = msg.status;
  const old = document.querySelector(`[data-job="${msg.id}"]`);
  if (old) old.replaceWith(jobRow(job, sched.now));
}

function listen() {
  const live = $("#live");
  const es = new EventSource("/api/events");
  es.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  es.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
  es.addEventListener("sched", () => refresh("sched"));
  es.addEventListener("cluster", () => refresh("cluster"));
  es.addEventListener("monitor", (e) => onMonitor(JSON.parse(e.data)));
}

async function start() {
  $("#job-form").addEventListener("submit", newJob);
  for (const r of document.querySelectorAll('#job-form input[name="kind"]')) {
    r.addEventListener("change", chooseKind);
  }
  chooseKind();
  for (const b of document.querySelectorAll("#group-form button")) {
    b.addEventListener("click", () => groupCtl(b.dataset.verb));
  }
  const me = await api("/api/me");
  if (me.ok) {
    $("#me").textContent = `${me.body.name} · ${me.body.roles.join(" ")}`;
    $("#me").title = "the certificate this server acts with: the token grants these roles";
  }
  listen();
}

start();
