/* btlake lake browser: fetches JSON from /api/v1 and renders it. No framework, no build step.
 * Everything from the lake (run ids, params, manifests) is inserted as text, never as HTML. */
(function () {
  "use strict";

  const BASE = document.body.dataset.base || "";
  const API = BASE + "/api/v1";
  const TOKEN_KEY = "btlake.token";
  const PAGE_SIZE = 50;
  const PREFERRED_METRICS = ["sharpe", "total_return", "max_drawdown", "win_rate", "n_trades"];
  const PERCENT = /(return|drawdown|win_rate|volatility)/;
  const KEYWORDS = new Set(["and", "or", "not", "in", "like", "is", "null", "true", "false"]);

  // --- small DOM helpers ----------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function $(id) { return document.getElementById(id); }

  function showStatus(kind, title, text, extra) {
    const box = clear($("status"));
    box.className = "status " + kind;
    if (!title && !text) return;
    box.append(el("strong", { text: title }));
    if (text) box.append(el("p", { text: text }));
    if (extra) box.append(extra);
  }

  // --- formatting ------------------------------------------------------------------------------

  function fmtNumber(value, name) {
    if (value === null || value === undefined) return "";
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value !== "number") return String(value);
    if (name && PERCENT.test(name) && Math.abs(value) < 100) {
      return (value * 100).toFixed(2) + "%";
    }
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    const abs = Math.abs(value);
    if (abs >= 1000) return value.toLocaleString("en-US", { maximumFractionDigits: 2 });
    if (abs >= 1) return String(Number(value.toFixed(4)));
    if (abs === 0) return "0";
    return String(Number(value.toPrecision(4)));
  }

  function fmtTime(text) {
    if (!text) return "";
    const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?/.exec(text);
    return match ? match[1] + " " + match[2] + (match[3] || "") + " UTC" : text;
  }

  function fmtShortTime(text) {
    const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(text || "");
    return match ? match[1] + " " + match[2] : text || "";
  }

  function fmtValue(value, name) {
    if (value === null || value === undefined) return "";
    if (Array.isArray(value)) return value.map((v) => fmtValue(v, name)).join(", ");
    if (typeof value === "object") return JSON.stringify(value);
    if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)) return fmtTime(value);
    return fmtNumber(value, name);
  }

  function shortHash(hash) { return hash ? hash.slice(0, 12) : ""; }

  // --- the API, with the token ---------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function apiUrl(path, params) {
    const url = new URL(API + path, window.location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value === null || value === undefined || value === "") continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v);
    }
    return url.pathname + url.search;
  }

  function storedToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function askToken(message) {
    const dialog = $("token-dialog");
    const input = $("token-input");
    if (message) $("token-message").textContent = message;
    input.value = "";
    return new Promise((resolve, reject) => {
      const done = () => {
        dialog.removeEventListener("close", done);
        if (dialog.returnValue === "ok" && input.value) {
          sessionStorage.setItem(TOKEN_KEY, input.value.trim());
          resolve();
        } else {
          reject(new ApiError("This lake needs a token to read. Reload the page to enter it.",
            401));
        }
      };
      dialog.returnValue = "";
      dialog.addEventListener("close", done);
      if (!dialog.open) dialog.showModal();
      input.focus();
    });
  }

  async function authorizedFetch(url, accept) {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const headers = { Accept: accept || "application/json" };
      const token = storedToken();
      if (token) headers.Authorization = "Bearer " + token;
      let response;
      try {
        response = await fetch(url, { headers: headers });
      } catch (err) {
        throw new ApiError("The server did not answer (" + err.message + ").", 0);
      }
      if (response.status === 401) {
        await askToken("The API answered 401: this server needs a bearer token to read. " +
          "It is kept in this browser tab only (sessionStorage).");
        continue;
      }
      if (response.status === 403 && token) {
        sessionStorage.removeItem(TOKEN_KEY);
        await askToken("That token was not accepted (403). Enter another one.");
        continue;
      }
      return response;
    }
    throw new ApiError("Too many token attempts.", 401);
  }

  async function api(path, params) {
    const response = await authorizedFetch(apiUrl(path, params));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error : "HTTP " + response.status;
      throw new ApiError(message, response.status, body);
    }
    return body;
  }

  function setupTokenButton() {
    const button = $("token-button");
    const clearButton = $("token-clear");
    button.hidden = false;
    button.textContent = storedToken() ? "Token ✓" : "Token";
    button.addEventListener("click", () => {
      askToken("Set the bearer token this tab sends to the API (kept in sessionStorage only).")
        .then(() => window.location.reload(), () => {});
    });
    clearButton.addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("token-dialog").close("");
      window.location.reload();
    });
  }

  async function download(url, filename) {
    const response = await authorizedFetch(url, "*/*");
    if (!response.ok) {
      let message = "HTTP " + response.status;
      try { message = (await response.json()).error || message; } catch (e) { /* binary */ }
      throw new ApiError(message, response.status);
    }
    const blob = await response.blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }

  function errorBox(err) {
    showStatus("error", err.status === 404 ? "Not found" : "Something is wrong with the request",
      err.message);
  }

  // --- the smart query -----------------------------------------------------------------------

  /* "strategy:momentum* market:BINANCE since:2024-11-01 params.lookback >= 20" ->
   * {strategy, market: [...], since, until, where}. key:value filters may appear anywhere
   * outside quoted strings; values may be quoted ('NYSE ARCA'). A query of bare words only
   * searches run ids and strategies containing each word. */
  function parseQuery(text) {
    const out = { market: [], where: "" };
    let rest = "";
    let i = 0;
    while (i < text.length) {
      const ch = text[i];
      if (ch === "'") {
        let j = i + 1;
        while (j < text.length) {
          if (text[j] === "'") {
            if (text[j + 1] === "'") { j += 2; continue; }
            break;
          }
          j += 1;
        }
        rest += text.slice(i, j + 1);
        i = j + 1;
        continue;
      }
      if (i === 0 || /[\s(]/.test(text[i - 1])) {
        const match = /^(strategy|market|since|until):('(?:[^']|'')*'|[^\s)]+)/i
          .exec(text.slice(i));
        if (match) {
          let value = match[2];
          if (value.startsWith("'")) value = value.slice(1, -1).replace(/''/g, "'");
          const key = match[1].toLowerCase();
          if (key === "market") out.market.push(value); else out[key] = value;
          i += match[0].length;
          continue;
        }
      }
      rest += ch;
      i += 1;
    }
    rest = rest.trim();
    const words = rest ? rest.split(/\s+/) : [];
    if (words.length && words.every((w) => /^[\w.*\-]+$/.test(w) && !KEYWORDS.has(w.toLowerCase())
        && !/^[+-]?\d/.test(w))) {
      out.where = words.map((w) => {
        const pattern = "%" + w.replace(/\*/g, "%") + "%";
        return "(run_id like '" + pattern + "' or strategy_id like '" + pattern + "')";
      }).join(" and ");
    } else {
      out.where = rest;
    }
    return out;
  }

  function fieldsIn(where) {
    const fields = [];
    const re = /\b((?:params|metrics)\.[A-Za-z0-9_][A-Za-z0-9_\-]*)/g;
    const unquoted = where.replace(/'(?:[^']|'')*'/g, "''");
    let match;
    while ((match = re.exec(unquoted)) !== null) {
      if (!fields.includes(match[1])) fields.push(match[1]);
    }
    return fields;
  }

  // --- runs page -----------------------------------------------------------------------------

  function initIndex() {
    const form = $("query-form");
    const input = $("q");
    const table = $("runs");
    const selected = new Set();

    function readUrl() {
      const params = new URLSearchParams(window.location.search);
      return {
        q: params.get("q") || "",
        sort: params.get("sort") || "",
        desc: params.get("desc") === "1" || params.get("desc") === "true",
        offset: Math.max(0, parseInt(params.get("offset") || "0", 10) || 0),
      };
    }

    function writeUrl(state, push) {
      const params = new URLSearchParams();
      if (state.q) params.set("q", state.q);
      if (state.sort) params.set("sort", state.sort);
      if (state.sort && state.desc) params.set("desc", "1");
      if (state.offset) params.set("offset", String(state.offset));
      const query = params.toString();
      const url = window.location.pathname + (query ? "?" + query : "");
      if (push) window.history.pushState(null, "", url);
      else window.history.replaceState(null, "", url);
    }

    function updateSelection() {
      const button = $("compare-selected");
      button.disabled = selected.size < 2;
      $("selection-note").textContent = selected.size
        ? selected.size + " selected" + (selected.size < 2 ? " (pick at least two)" : "") : "";
    }

    $("compare-selected").addEventListener("click", () => {
      const params = new URLSearchParams();
      for (const id of selected) params.append("run", id);
      window.location.href = BASE + "/compare?" + params.toString();
    });

    async function load() {
      const state = readUrl();
      input.value = state.q;
      const query = parseQuery(state.q);
      showStatus("info", "Searching…", "");
      let page;
      try {
        page = await api("/runs", {
          strategy: query.strategy, market: query.market, since: query.since,
          until: query.until, where: query.where, order_by: state.sort || null,
          desc: state.sort ? String(state.desc) : null, limit: PAGE_SIZE, offset: state.offset,
        });
      } catch (err) {
        table.hidden = true;
        $("results-toolbar").hidden = true;
        errorBox(err);
        return;
      }
      render(state, query, page);
    }

    function columnsFor(runs, query) {
      const metricNames = new Set();
      for (const run of runs) for (const k of Object.keys(run.metrics || {})) metricNames.add(k);
      const metrics = PREFERRED_METRICS.filter((m) => metricNames.has(m));
      for (const m of [...metricNames].sort()) if (metrics.length < 5 && !metrics.includes(m)) metrics.push(m);
      const extra = fieldsIn(query.where || "");
      const columns = [
        { key: "run_id", label: "Run", sort: "run_id" },
        { key: "strategy_id", label: "Strategy", sort: "strategy_id" },
        { key: "created_at", label: "Created (UTC)", sort: "created_at", time: true },
        { key: "markets", label: "Markets" },
      ];
      for (const field of extra) {
        if (field.startsWith("params.")) columns.push({ key: field, label: field, sort: field });
      }
      for (const m of metrics) columns.push({ key: "metrics." + m, label: m, sort: "metrics." + m, num: true });
      for (const field of extra) {
        if (field.startsWith("metrics.") && !columns.some((c) => c.key === field)) {
          columns.push({ key: field, label: field.slice(8), sort: field, num: true });
        }
      }
      columns.push({ key: "params", label: "Params" });
      return columns;
    }

    function cellValue(run, key) {
      if (key.startsWith("metrics.")) return (run.metrics || {})[key.slice(8)];
      if (key.startsWith("params.")) return (run.params || {})[key.slice(7)];
      return run[key];
    }

    function render(state, query, page) {
      const runs = page.runs;
      const filtered = Boolean(state.q.trim());
      if (!runs.length) {
        table.hidden = true;
        $("results-toolbar").hidden = true;
        if (page.total === 0 && !filtered) {
          showStatus("empty", "The lake has no runs yet",
            "Upload a bundle (POST /api/v1/bundles), publish one with `btlake publish DIR`, " +
            "or try `btlake demo && btlake ingest`.");
        } else if (page.total === 0) {
          showStatus("empty", "No runs match this query",
            "Loosen a filter, or check field names: params.NAME and metrics.NAME must exist " +
            "on a run to match.");
        } else {
          showStatus("empty", "No more runs", "This page is past the last match.");
        }
        return;
      }
      const first = state.offset + 1;
      const last = state.offset + runs.length;
      showStatus("ok", page.total.toLocaleString("en-US") + (page.total === 1 ? " run" : " runs") +
        (filtered ? " match" : ""), page.total > runs.length
        ? "Showing " + first + "–" + last + (state.sort ? "" : ", newest first") : "");
      const columns = columnsFor(runs, query);
      clear(table);
      table.hidden = false;
      $("results-toolbar").hidden = false;
      const head = el("tr", {}, el("th", { class: "select", scope: "col" },
        el("span", { class: "visually-hidden", text: "Select" })));
      for (const col of columns) {
        const active = state.sort === col.sort && col.sort;
        const th = el("th", { scope: "col", class: col.num ? "num" : null,
          "aria-sort": active ? (state.desc ? "descending" : "ascending") : null });
        if (col.sort) {
          th.append(el("button", {
            type: "button", class: "sort",
            title: "Sort by " + col.label,
            onclick: () => {
              const next = readUrl();
              if (next.sort === col.sort) next.desc = !next.desc;
              else { next.sort = col.sort; next.desc = col.num || col.sort === "created_at"; }
              next.offset = 0;
              writeUrl(next, true);
              load();
            },
          }, col.label, el("span", { class: "arrow", text: active ? (state.desc ? " ▼" : " ▲") : "" })));
        } else {
          th.textContent = col.label;
        }
        head.append(th);
      }
      const body = el("tbody");
      for (const run of runs) {
        const box = el("input", { type: "checkbox", "aria-label": "select " + run.run_id,
          onchange: (ev) => { if (ev.target.checked) selected.add(run.run_id); else selected.delete(run.run_id); updateSelection(); } });
        box.checked = selected.has(run.run_id);
        const row = el("tr", {}, el("td", { class: "select" }, box));
        for (const col of columns) {
          let cell;
          if (col.key === "run_id") {
            cell = el("td", { class: "mono run" }, el("a", {
              href: BASE + "/runs/" + encodeURIComponent(run.run_id), text: run.run_id }));
          } else if (col.key === "params") {
            const text = Object.entries(run.params || {})
              .map(([k, v]) => k + "=" + fmtNumber(v)).join("  ");
            cell = el("td", { class: "params", title: text, text: text });
          } else if (col.time) {
            cell = el("td", { class: "time", title: run[col.key], text: fmtShortTime(run[col.key]) });
          } else {
            const value = cellValue(run, col.key);
            const name = col.key.split(".").pop();
            cell = el("td", { class: col.num ? "num" : null, text: fmtValue(value, name) });
            if (col.num && typeof value === "number" && value < 0) cell.classList.add("neg");
          }
          row.append(cell);
        }
        body.append(row);
      }
      table.append(el("thead", {}, head), body);
      $("prev-page").hidden = state.offset === 0;
      $("next-page").hidden = last >= page.total;
      updateSelection();
    }

    $("prev-page").addEventListener("click", () => {
      const state = readUrl();
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      writeUrl(state, true);
      load();
    });
    $("next-page").addEventListener("click", () => {
      const state = readUrl();
      state.offset += PAGE_SIZE;
      writeUrl(state, true);
      load();
    });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const state = readUrl();
      state.q = input.value.trim();
      state.offset = 0;
      writeUrl(state, true);
      load();
    });
    window.addEventListener("popstate", load);
    load();
  }

  // --- run page ------------------------------------------------------------------------------

  function kvRows(table, entries, nameForFormat) {
    clear(table);
    const body = el("tbody");
    if (!entries.length) body.append(el("tr", {}, el("td", { class: "muted", text: "none" })));
    for (const [key, value] of entries) {
      const cell = value instanceof Node ? el("td", {}, value)
        : el("td", { text: fmtValue(value, nameForFormat ? key : null) });
      body.append(el("tr", {}, el("th", { scope: "row", text: key }), cell));
    }
    table.append(body);
  }

  function plotEquity(node, series, options) {
    const traces = [];
    const layout = {
      margin: { l: 64, r: 16, t: 8, b: 36 }, hovermode: "x unified",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      legend: { orientation: "h", y: 1.08, x: 0 },
      xaxis: { type: "date", gridcolor: "#eef0f3" },
      yaxis: { title: { text: options.rebase ? "Equity (rebased to 100)" : "Equity" },
        domain: options.drawdown ? [0.34, 1] : [0, 1], gridcolor: "#eef0f3", zeroline: false },
    };
    for (const s of series) {
      let y = s.equity;
      if (options.rebase) {
        const first = y.find((v) => v !== null && v !== 0);
        y = y.map((v) => (v === null || !first ? null : (v / first) * 100));
      }
      traces.push({ x: s.ts, y: y, type: "scatter", mode: "lines", name: s.name,
        line: { width: 1.6 } });
    }
    if (options.drawdown && series.length) {
      const s = series[0];
      layout.xaxis.anchor = "y2";
      traces.push({ x: s.ts, y: s.drawdown, type: "scatter", mode: "lines", name: "Drawdown",
        yaxis: "y2", fill: "tozeroy", line: { width: 1, color: "#c0392b" },
        fillcolor: "rgba(192,57,43,0.18)" });
      layout.yaxis2 = { title: { text: "Drawdown" }, domain: [0, 0.26], tickformat: ".1%",
        gridcolor: "#eef0f3", rangemode: "tozero" };
    }
    if (!window.Plotly) {
      clear(node).append(el("p", { class: "muted", text: "Plotting library did not load." }));
      return;
    }
    window.Plotly.react(node, traces, layout, { responsive: true, displaylogo: false,
      modeBarButtonsToRemove: ["lasso2d", "select2d"] });
  }

  function downloadButtons(runId, record) {
    const box = clear($("downloads"));
    const tables = record.tables && record.tables.length ? record.tables : [];
    if (!tables.length) {
      box.append(el("p", { class: "muted", text: "This run has no tables." }));
      return;
    }
    for (const table of tables) {
      const rows = (record.rows || {})[table];
      const group = el("div", { class: "download" },
        el("span", { class: "table-name", text: table }),
        el("span", { class: "muted", text: rows === null || rows === undefined ? "" : fmtNumber(rows) + " rows" }));
      for (const [format, label, ext] of [["parquet", "Parquet", "parquet"], ["arrow", "Arrow", "arrows"],
        ["csv", "CSV", "csv"], ["json", "JSON", "json"]]) {
        const url = apiUrl("/tables/" + encodeURIComponent(table), { run_id: runId, format: format });
        const filename = runId + "." + table + "." + ext;
        group.append(el("a", {
          class: "button", href: url, download: filename,
          dataset: { table: table, format: format },
          onclick: (ev) => {
            if (!storedToken()) return; // a plain link works when reads need no token
            ev.preventDefault();
            download(url, filename).catch((err) => errorBox(err));
          },
        }, label));
      }
      box.append(group);
    }
  }

  async function initRun() {
    setupTokenButton();
    const runId = $("run").dataset.runId;
    showStatus("info", "Loading…", "");
    let record;
    try {
      record = await api("/runs/" + encodeURIComponent(runId));
    } catch (err) {
      if (err.status === 404) {
        showStatus("empty", "No run " + runId,
          "It may have a different id, or not be ingested yet. Search for it on the Runs page.");
      } else {
        errorBox(err);
      }
      return;
    }
    showStatus("", "", "");
    $("run-body").hidden = false;
    const metrics = record.metrics || {};
    const cards = clear($("headline"));
    const card = (label, value, name) => el("div", { class: "card" },
      el("div", { class: "label", text: label }),
      el("div", { class: "value" + (typeof value === "number" && value < 0 ? " neg" : ""),
        text: fmtValue(value, name) }));
    cards.append(card("Strategy", record.strategy_id), card("Created", record.created_at),
      card("Markets", record.markets), card("Engine",
        [record.engine_name, record.engine_version].filter(Boolean).join(" ")));
    for (const name of PREFERRED_METRICS.slice(0, 5)) {
      if (name in metrics) cards.append(card(name, metrics[name], name));
    }
    kvRows($("params"), Object.entries(record.params || {}));
    kvRows($("metrics"), Object.entries(metrics), true);
    const rows = Object.entries(record.rows || {}).filter(([, v]) => v !== null)
      .map(([k, v]) => k + " " + fmtNumber(v)).join(", ");
    const versions = Object.entries(record.versions || {}).filter(([, v]) => v !== null)
      .map(([k, v]) => k + " v" + v).join(", ");
    kvRows($("metadata"), [
      ["run_id", record.run_id], ["kind", record.kind], ["strategy_id", record.strategy_id],
      ["created_at", record.created_at], ["engine", [record.engine_name, record.engine_version].filter(Boolean).join(" ")],
      ["code_version", record.code_version], ["markets", record.markets], ["tags", record.tags],
      ["tables (rows)", rows], ["Delta versions", versions],
      ["content_hash", record.content_hash], ["ingested_at", record.ingested_at],
      ["batch_id", record.batch_id], ["source", record.source_uri], ["archive", record.archive_uri],
      ...Object.entries(record.extra || {}).map(([k, v]) => [k, v]),
    ]);
    $("environment").textContent = JSON.stringify(record.environment || {}, null, 2);
    $("manifest").textContent = JSON.stringify(record.manifest || {}, null, 2);
    downloadButtons(runId, record);
    loadEquity(runId);
    loadVersions(runId);
  }

  async function loadEquity(runId) {
    const node = $("equity-plot");
    try {
      const curve = await api("/runs/" + encodeURIComponent(runId) + "/equity", { points: 2000 });
      if (!curve.total_points) {
        clear(node).append(el("p", { class: "empty-inline", text: "This run has no equity rows." }));
        return;
      }
      $("equity-note").textContent = curve.downsampled
        ? "Showing " + fmtNumber(curve.points) + " of " + fmtNumber(curve.total_points) +
          " points (min, max and deepest drawdown of each bucket)."
        : fmtNumber(curve.total_points) + " points.";
      plotEquity(node, [{ name: "Equity", ts: curve.ts, equity: curve.equity, drawdown: curve.drawdown }],
        { drawdown: true });
    } catch (err) {
      clear(node).append(el("p", { class: "status error", text: err.message }));
    }
  }

  async function loadVersions(runId) {
    const table = clear($("versions"));
    let doc;
    try {
      doc = await api("/runs/" + encodeURIComponent(runId) + "/versions");
    } catch (err) {
      table.append(el("caption", { class: "status error", text: err.message }));
      return;
    }
    const versions = doc.versions || [];
    table.append(el("thead", {}, el("tr", {}, ["A", "B", "Ingested", "Status", "Content hash",
      "Rows", "Runs table version"].map((h) => el("th", { scope: "col", text: h })))));
    const body = el("tbody");
    versions.forEach((v, i) => {
      const version = (v.versions || {}).runs;
      const radio = (name, checked) => {
        const input = el("input", { type: "radio", name: name, value: String(version),
          "aria-label": name + " = version " + version });
        input.checked = checked;
        return input;
      };
      const rows = Object.entries(v.rows || {}).map(([k, n]) => k + " " + fmtNumber(n)).join(", ");
      body.append(el("tr", { class: v.current ? "current" : null },
        el("td", {}, radio("va", i === 1)), el("td", {}, radio("vb", i === 0)),
        el("td", { text: fmtTime(v.ingested_at) }),
        el("td", {}, v.status, v.current ? el("span", { class: "badge", text: "current" }) : null),
        el("td", { class: "mono", title: v.content_hash, text: shortHash(v.content_hash) }),
        el("td", { text: rows }), el("td", { class: "num", text: version })));
    });
    table.append(body);
    const button = $("diff-button");
    if (versions.length < 2) {
      button.hidden = true;
      $("diff").append(el("p", { class: "muted", text: "Only one version of this run has been ingested: re-ingesting it with different content adds one." }));
      return;
    }
    button.addEventListener("click", () => showDiff(runId));
  }

  async function showDiff(runId) {
    const box = clear($("diff"));
    const a = document.querySelector("input[name=va]:checked");
    const b = document.querySelector("input[name=vb]:checked");
    if (!a || !b || a.value === b.value) {
      box.append(el("p", { class: "status error", text: "Pick two different versions (A and B)." }));
      return;
    }
    let diff;
    try {
      diff = await api("/runs/" + encodeURIComponent(runId) + "/diff", { a: a.value, b: b.value });
    } catch (err) {
      box.append(el("p", { class: "status error", text: err.message }));
      return;
    }
    const rows = [];
    for (const section of ["params", "metrics", "rows"]) {
      for (const [name, v] of Object.entries(diff[section])) if (v.differs) rows.push([section, name, v]);
    }
    for (const [part, values] of Object.entries(diff.summary)) {
      for (const [name, v] of Object.entries(values)) if (v.differs) rows.push(["summary." + part, name, v]);
    }
    box.append(el("p", {}, el("strong", { text: rows.length + (rows.length === 1 ? " change" : " changes") }),
      " from version " + diff.a.runs_version + " (" + fmtTime(diff.a.ingested_at) + ", " +
      shortHash(diff.a.content_hash) + ") to version " + diff.b.runs_version + " (" +
      fmtTime(diff.b.ingested_at) + ", " + shortHash(diff.b.content_hash) + ")."));
    if (!rows.length) {
      box.append(el("p", { class: "muted", text: "Params, metrics, row counts and summaries are identical; only the files' bytes differ." }));
      return;
    }
    const table = el("table", { class: "data diff" },
      el("thead", {}, el("tr", {}, ["What", "Name", "A", "B"].map((h) => el("th", { scope: "col", text: h })))));
    const body = el("tbody");
    for (const [section, name, v] of rows) {
      body.append(el("tr", { class: "differs" }, el("td", { text: section }), el("th", { scope: "row", text: name }),
        el("td", { class: "num", text: fmtValue(v.a, name) }), el("td", { class: "num", text: fmtValue(v.b, name) })));
    }
    table.append(body);
    box.append(table);
  }

  // --- compare page --------------------------------------------------------------------------

  async function initCompare() {
    setupTokenButton();
    const params = new URLSearchParams(window.location.search);
    const runs = [];
    for (const value of params.getAll("run")) {
      for (const id of value.split(/[\s,]+/)) if (id && !runs.includes(id)) runs.push(id);
    }
    const input = $("compare-runs");
    input.value = runs.join(" ");
    $("compare-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const next = new URLSearchParams();
      for (const id of input.value.split(/[\s,]+/)) if (id) next.append("run", id);
      window.location.search = next.toString();
    });
    if (runs.length < 2) {
      showStatus("empty", "Pick two or more runs",
        "Select runs on the Runs page and press “Compare selected”, or type their ids above.");
      return;
    }
    showStatus("info", "Loading…", "");
    let doc;
    try {
      doc = await api("/compare/runs", { run: runs });
    } catch (err) {
      errorBox(err);
      return;
    }
    showStatus("", "", "");
    $("compare-body").hidden = false;
    const ids = doc.runs;
    const header = (first) => el("thead", {}, el("tr", {}, el("th", { scope: "col", text: first }),
      ids.map((id) => el("th", { scope: "col", class: "mono" },
        el("a", { href: BASE + "/runs/" + encodeURIComponent(id), text: id }))),
      el("th", { scope: "col", class: "marker", title: "differs", text: "≠" })));

    function sideTable(table, values, onlyDiff) {
      clear(table);
      table.append(header("Name"));
      const body = el("tbody");
      const names = Object.keys(values);
      let shown = 0;
      for (const name of names) {
        const v = values[name];
        if (onlyDiff && !v.differs) continue;
        shown += 1;
        body.append(el("tr", { class: v.differs ? "differs" : null },
          el("th", { scope: "row", text: name }),
          ids.map((id) => el("td", { text: fmtValue(v.values[id], name) })),
          el("td", { class: "marker", text: v.differs ? "≠" : "" })));
      }
      if (!shown) body.append(el("tr", {}, el("td", { colspan: String(ids.length + 2), class: "muted",
        text: names.length ? "No differences." : "None." })));
      table.append(body);
    }

    const onlyDiff = $("only-diff");
    const renderParams = () => sideTable($("compare-params"), doc.params, onlyDiff.checked);
    onlyDiff.addEventListener("change", renderParams);
    renderParams();
    sideTable($("compare-metrics"), doc.metrics, false);
    sideTable($("compare-summary"), doc.summary, false);
    sideTable($("compare-metadata"), doc.metadata, false);

    const plot = $("compare-plot");
    let curves;
    try {
      curves = await Promise.all(ids.map((id) =>
        api("/runs/" + encodeURIComponent(id) + "/equity", { points: 1500 })));
    } catch (err) {
      clear(plot).append(el("p", { class: "status error", text: err.message }));
      return;
    }
    const series = curves.filter((c) => c.total_points).map((c) =>
      ({ name: c.run_id, ts: c.ts, equity: c.equity, drawdown: c.drawdown }));
    if (!series.length) {
      clear(plot).append(el("p", { class: "empty-inline", text: "None of these runs has equity rows." }));
      return;
    }
    const normalize = $("normalize");
    const draw = () => plotEquity(plot, series, { rebase: normalize.checked });
    normalize.addEventListener("change", draw);
    draw();
  }

  // --- start ---------------------------------------------------------------------------------

  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const target = ev.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const box = $("q") || $("compare-runs");
    if (box) {
      ev.preventDefault();
      box.focus();
      box.select();
    }
  });

  const page = document.body.dataset.page;
  if (page === "index") {
    setupTokenButton();
    initIndex();
  } else if (page === "run") {
    initRun();
  } else if (page === "compare") {
    initCompare();
  }
  window.btlake = { parseQuery: parseQuery, api: api, el: el, clear: clear, errorBox: errorBox,
                    fmtTime: fmtTime, setupTokenButton: setupTokenButton };
})();
