// sandboxer monitor: keeps the table, counters and detail pane in step with /monitor/ws.
// No framework, no build step; every value from the server is set as text, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const rows = new Map();          // id → row (MonitorRow JSON)
  const trs = new Map();           // id → <tr>
  const LIVE = new Set(["creating", "running", "stopping"]);
  let socket = null, retryDelay = 1000, selected = null, followedRun = null, lastAttempt = 0;
  let renderPending = false, runsEnabled = true;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtDuration(ms) {
    if (ms == null || ms < 0) return "—";
    if (ms < 1000) return Math.round(ms) + " ms";
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    const m = Math.floor(s / 60), r = Math.floor(s % 60);
    if (m < 60) return m + "m " + String(r).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
  }
  function fmtBytes(b) {
    if (b == null || b <= 0) return "—";
    const u = ["B", "KiB", "MiB", "GiB"]; let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b) + " " + u[i];
  }
  function fmtCpu(ms) { return ms == null ? "—" : (ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(2) + " s"); }
  function time(t) { return t ? new Date(t).toLocaleTimeString() : "—"; }
  function duration(r) {
    const start = r.started_at ? Date.parse(r.started_at) : null;
    if (!start) return r.state === "queued" ? "waiting " + fmtDuration(Date.now() - Date.parse(r.created_at)) : "—";
    return fmtDuration((r.ended_at ? Date.parse(r.ended_at) : Date.now()) - start);
  }
  function outcome(r) {
    if (r.cancel_requested && !["cancelled", "succeeded", "failed", "timed_out", "dead"].includes(r.state)) return "cancelling…";
    let o = r.outcome || "";
    if (o === "exit_nonzero" && r.exit_code != null) o = "exit " + r.exit_code;
    return o || "—";
  }

  function notice(text) {
    const n = $("notice");
    n.textContent = text; n.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(() => { n.hidden = true; }, 6000);
  }
  function send(msg) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
    else notice("not connected: the action was not sent");
  }

  // ---- table ----
  function actionButton(r) {
    if (r.kind !== "run") return null;
    if (r.can_cancel) {
      const b = el("button", "cancel", "Cancel");
      b.type = "button"; b.dataset.action = "cancel"; b.dataset.run = r.id;
      return b;
    }
    if (r.can_retry) {
      const b = el("button", "retry", "Retry");
      b.type = "button"; b.dataset.action = "retry"; b.dataset.run = r.id;
      return b;
    }
    return null;
  }
  function fillRow(tr, r) {
    tr.replaceChildren();
    tr.dataset.state = r.state;
    tr.dataset.kind = r.kind;
    const idCell = el("td", "mono");
    idCell.append(el("span", "kind", r.kind), document.createTextNode(r.id));
    const stateCell = el("td");
    stateCell.append(el("span", "state state-" + r.state, r.state.replace("_", " ")));
    const action = el("td");
    const b = actionButton(r); if (b) action.append(b);
    const cmd = el("td", "cmd mono", r.command || ""); cmd.title = r.command || "";
    tr.append(idCell, stateCell, el("td", "", r.isolation), el("td", "", r.profile), cmd,
      el("td", "dur", duration(r)), el("td", "", fmtCpu(r.cpu_ms)), el("td", "", fmtBytes(r.peak_memory_bytes)),
      el("td", "outcome", outcome(r)), action);
  }
  function upsert(r, flash) {
    const previous = rows.get(r.id);
    rows.set(r.id, r);
    let tr = trs.get(r.id);
    if (!tr) {
      tr = el("tr"); tr.id = "row-" + r.id; trs.set(r.id, tr);
      tr.addEventListener("click", (ev) => { if (!ev.target.closest("button")) select(r.id); });
    }
    fillRow(tr, r);
    if (flash && previous && previous.state !== r.state) { tr.classList.remove("flash"); void tr.offsetWidth; tr.classList.add("flash"); }
    if (r.id === selected) showDetail(r, null);
    scheduleRender();
  }
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(render);
  }
  function render() {
    renderPending = false;
    const body = $("rows").tBodies[0];
    const sorted = [...rows.values()].sort((a, b) => {
      const la = LIVE.has(a.state) || a.state === "queued", lb = LIVE.has(b.state) || b.state === "queued";
      if (la !== lb) return la ? -1 : 1;
      return Date.parse(b.created_at) - Date.parse(a.created_at);
    });
    if (sorted.length === 0) {
      const tr = el("tr"), td = el("td", "empty", runsEnabled ? "No runs or live sandboxes yet. Submit one: POST /v1/runs" : "No live sandboxes (this server has no run queue).");
      td.colSpan = 10; tr.append(td); body.replaceChildren(tr); counters(); return;
    }
    body.replaceChildren(...sorted.map((r) => trs.get(r.id)));
    for (const [id, tr] of trs) tr.classList.toggle("selected", id === selected);
    counters();
  }

  // ---- counters ----
  let stats = { minutes: [], queued: 0, running: 0 };
  function counters() {
    let live = 0;
    for (const r of rows.values()) if (r.kind === "sandbox" && LIVE.has(r.state)) live++;
    $("c-queued").textContent = stats.queued;
    $("c-running").textContent = stats.running;
    $("c-sandboxes").textContent = live;
    let ok = 0, bad = 0;
    const slots = new Map();
    for (const m of stats.minutes) { ok += m.succeeded; bad += m.failed; slots.set(Math.floor(Date.parse(m.at) / 60000), m); }
    $("c-succeeded").textContent = ok;
    $("c-failed").textContent = bad;
    const now = Math.floor(Date.now() / 60000);
    let max = 1;
    for (const m of slots.values()) max = Math.max(max, m.succeeded + m.failed);
    const bars = [];
    for (let i = 9; i >= 0; i--) {
      const m = slots.get(now - i) || { succeeded: 0, failed: 0 };
      const slot = el("div", "slot");
      slot.title = new Date((now - i) * 60000).toLocaleTimeString() + ": " + m.succeeded + " succeeded, " + m.failed + " failed";
      const g = el("div", "ok"); g.style.height = (100 * m.succeeded / max) + "%";
      const r = el("div", "bad"); r.style.height = (100 * m.failed / max) + "%";
      slot.append(g, r); bars.push(slot);
    }
    $("bars").replaceChildren(...bars);
  }

  // ---- detail ----
  function select(id) {
    selected = id;
    const r = rows.get(id);
    if (!r) return;
    $("detail").hidden = false;
    $("detail").parentElement.classList.add("with-detail");
    $("d-log").replaceChildren();
    $("d-attempts").tBodies[0].replaceChildren();
    lastAttempt = 0;
    followedRun = r.kind === "run" ? id : null;
    send({ type: "follow", run: followedRun });
    showDetail(r, null);
    scheduleRender();
  }
  function closeDetail() {
    selected = null; followedRun = null;
    $("detail").hidden = true;
    $("detail").parentElement.classList.remove("with-detail");
    send({ type: "follow", run: null });
    scheduleRender();
  }
  function showDetail(r, attempts) {
    $("d-title").textContent = r.id;
    const dl = $("d-fields");
    const fields = [["state", r.state], ["isolation", r.isolation], ["profile", r.profile], ["command", r.command || "—"],
      ["created", time(r.created_at)], ["started", time(r.started_at)], ["ended", time(r.ended_at)],
      ["duration", duration(r)], ["cpu", fmtCpu(r.cpu_ms)], ["peak memory", fmtBytes(r.peak_memory_bytes)],
      ["outcome", outcome(r)], ["reason", r.reason || "—"]];
    if (r.kind === "run") fields.splice(4, 0, ["attempts", r.attempts]);
    dl.replaceChildren(...fields.flatMap(([k, v]) => {
      const dd = el("dd");
      dd.append(k === "state" ? el("span", "state state-" + r.state, v) : document.createTextNode(String(v)));
      return [el("dt", "", k), dd];
    }));
    $("d-cancel").hidden = $("d-retry").hidden = r.kind !== "run";
    $("d-cancel").disabled = !r.can_cancel;
    $("d-retry").disabled = !r.can_retry;
    if (attempts) {
      $("d-attempts").tBodies[0].replaceChildren(...attempts.map((a) => {
        const tr = el("tr");
        const d = a.ended_at ? fmtDuration(Date.parse(a.ended_at) - Date.parse(a.started_at)) : "running";
        tr.append(el("td", "", a.number), el("td", "", a.outcome || "running"), el("td", "", time(a.started_at)),
          el("td", "", d), el("td", "mono", a.sandbox_id || "—"), el("td", "", a.reason || ""));
        tr.lastChild.title = a.reason || ""; tr.children[4].title = a.sandbox_id || "";
        return tr;
      }));
    }
  }
  function appendLog(m) {
    if (m.run !== followedRun) return;
    const pre = $("d-log");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (m.attempt !== lastAttempt) {
      if (lastAttempt !== 0 || m.attempt > 1) pre.append(el("span", "sep", "── attempt " + m.attempt + " ──\n"));
      lastAttempt = m.attempt;
    }
    pre.append(el("span", m.stream === "stderr" ? "err" : "", m.text));
    while (pre.textContent.length > 200000 && pre.firstChild) pre.firstChild.remove();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  // ---- socket ----
  function setConn(text, live) { const c = $("conn"); c.textContent = text; c.classList.toggle("live", live); }
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/monitor/ws";
    socket = new WebSocket(url);
    socket.onopen = () => { retryDelay = 1000; setConn("live", true); };
    socket.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      switch (m.type) {
        case "snapshot":
          $("tenant").textContent = m.tenant;
          runsEnabled = m.runs_enabled;
          rows.clear(); trs.clear();
          for (const r of m.rows) upsert(r, false);
          stats = m.stats; scheduleRender();
          if (followedRun) send({ type: "follow", run: followedRun });
          break;
        case "row": upsert(m.row, true); break;
        case "stats": stats = m.stats; counters(); break;
        case "detail":
          if (m.row.id === selected) { rows.set(m.row.id, m.row); upsert(m.row, true); showDetail(m.row, m.attempts); }
          break;
        case "log": appendLog(m); break;
        case "notice": notice(m.message); break;
        case "error":
          notice(m.problem.detail);
          socket.onclose = null;
          setConn("signed out", false);
          setTimeout(() => location.assign("/monitor"), 1500);
          break;
      }
    };
    socket.onclose = () => {
      setConn("reconnecting…", false);
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b) return;
    b.disabled = true;
    send({ type: b.dataset.action, run: b.dataset.run });
  });
  $("d-close").addEventListener("click", closeDetail);
  $("d-cancel").addEventListener("click", () => { if (selected) send({ type: "cancel", run: selected }); });
  $("d-retry").addEventListener("click", () => { if (selected) send({ type: "retry", run: selected }); });
  // Durations of running rows tick; counters' minute slots move on.
  setInterval(() => {
    for (const [id, r] of rows) {
      if (r.ended_at) continue;
      const cell = trs.get(id) && trs.get(id).querySelector("td.dur");
      if (cell) cell.textContent = duration(r);
    }
    counters();
  }, 1000);
  render();
  connect();
})();
