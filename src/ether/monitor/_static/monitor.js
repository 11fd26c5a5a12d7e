// Ether monitor: renders the server's state, pushed through server-sent events.
// Plain DOM and textContent only (no HTML from data), nothing loaded from elsewhere.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token");
  const url = "events" + (token ? "?token=" + encodeURIComponent(token) : "");
  let updates = 0;

  const fmt = {
    n: (x) => (x === null || x === undefined ? "-" : String(x)),
    f: (x) => (x === null || x === undefined ? "-" : x.toFixed(1)),
    pct: (x) => (x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%"),
    bytes: (x) => (x === null || x === undefined ? "-" : (x / 1048576).toFixed(1) + " MiB"),
    secs: (x) => {
      if (x === null || x === undefined) return "-";
      x = Math.floor(x);
      return x < 60 ? x + "s" : x < 3600 ? Math.floor(x / 60) + "m" + (x % 60) + "s"
        : Math.floor(x / 3600) + "h" + Math.floor((x % 3600) / 60) + "m";
    },
  };

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function spark(values) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 120 20");
    const max = Math.max(1e-9, ...values);
    const step = values.length > 1 ? 120 / (values.length - 1) : 0;
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", values.map((v, i) => (i * step).toFixed(1) + "," +
      (19 - 18 * v / max).toFixed(1)).join(" "));
    svg.appendChild(line);
    return svg;
  }

  function instances(rows) {
    const body = $("instances").tBodies[0];
    body.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.instance = r.instance;
      tr.dataset.state = r.state;
      if (["dead", "failed", "restarting", "stuck"].includes(r.state)) tr.className = "dead";
      cell(tr, r.instance, "name");
      cell(tr, r["class"] || "-");
      cell(tr, r.state, "state " + r.state);
      cell(tr, fmt.n(r.pid), "num");
      cell(tr, fmt.secs(r.uptime_s), "num");
      cell(tr, fmt.n(r.restarts), "num");
      cell(tr, r.cpu_percent === null ? "-" : r.cpu_percent.toFixed(1) + "%", "num");
      cell(tr, fmt.bytes(r.rss_bytes), "num");
      cell(tr, fmt.pct(r.inbox_fill), "num");
      cell(tr, fmt.n(r.handled), "num handled");
      cell(tr, fmt.f(r.handled_hz), "num");
      cell(tr, fmt.n(r.published), "num published");
      cell(tr, fmt.f(r.published_hz), "num");
      cell(tr, fmt.n(r.dropped), "num");
      cell(tr, fmt.n(r.errors), "num errors");
      body.appendChild(tr);
    }
  }

  function topics(rows) {
    const body = $("topics").tBodies[0];
    body.replaceChildren();
    for (const t of rows) {
      const tr = document.createElement("tr");
      tr.dataset.topic = t.topic;
      cell(tr, t.topic, "name");
      cell(tr, t.publishers.join(", ") || "-");
      cell(tr, t.subscribers.map((s) => s.inbox + " (" + s.policy + ")").join(", ") || "-");
      cell(tr, fmt.f(t.rate_hz), "num rate");
      cell(tr, "").appendChild(spark(t.history || []));
      cell(tr, fmt.n(t.published), "num");
      cell(tr, fmt.n(t.dropped), "num");
      body.appendChild(tr);
    }
  }

  function logs(records) {
    const pre = $("logs");
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.replaceChildren();
    for (const r of records) {
      const span = document.createElement("span");
      span.className = "lvl-" + r.level;
      span.textContent = r.time_iso.slice(11) + " " + r.instance.padEnd(12) + " " +
        r.level.padEnd(7) + " " + r.message + "\n";
      pre.appendChild(span);
    }
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  function render(state) {
    $("session").textContent = state.session;
    $("hosts").textContent = (state.hosts || []).join(", ");
    instances(state.instances);
    topics(state.topics);
    logs(state.logs);
    updates += 1;
    $("updates").textContent = String(updates);
    document.body.dataset.updates = String(updates);
  }

  const source = new EventSource(url);
  source.onopen = () => { $("conn").textContent = "live"; $("conn").className = "live"; };
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.addEventListener("ended", () => {
    $("conn").textContent = "session ended"; $("conn").className = "lost"; source.close();
  });
  source.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").className = "lost"; };
})();
