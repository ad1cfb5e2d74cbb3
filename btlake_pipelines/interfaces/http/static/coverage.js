/* btlake coverage page: one market's symbols (in bands, aggregated by the server) x days on a
 * canvas. Gaps (sessions with no rows) are red, exchange holidays and weekends shaded. The
 * query lives in the URL. Data from GET /api/v1/coverage/markets and /coverage/map. */
(function () {
  "use strict";

  const COLORS = {
    full: "#15803d", part: "#86efac", gap: "#dc2626", holiday: "#cbd5e1",
    weekend: "#eef0f3", empty: "#ffffff",
  };

  function $(id) { return document.getElementById(id); }

  function status(kind, text) {
    const box = $("status");
    box.className = "status " + kind;
    box.textContent = text || "";
  }

  function readUrl() {
    const p = new URLSearchParams(window.location.search);
    return { table: p.get("table") || "ticks", market: p.get("market") || "",
             start: p.get("start") || "", end: p.get("end") || "" };
  }

  function writeUrl(q) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v) p.set(k, v);
    window.history.replaceState(null, "", window.location.pathname + "?" + p.toString());
  }

  // colour of one cell: a gap wins, then coverage, then the day's kind
  function cellColor(kind, present, gaps, symbols) {
    if (gaps > 0) return COLORS.gap;
    if (present > 0) return present >= symbols ? COLORS.full : COLORS.part;
    if (kind === "holiday") return COLORS.holiday;
    if (kind === "weekend") return COLORS.weekend;
    return COLORS.empty;
  }

  function draw(doc) {
    const canvas = $("cov-canvas");
    const days = doc.days.length;
    const bands = doc.bands.length;
    const cw = Math.max(2, Math.min(14, Math.floor(1240 / Math.max(days, 1))));
    const ch = Math.max(3, Math.min(14, Math.floor(480 / Math.max(bands, 1))));
    canvas.width = cw * days;
    canvas.height = ch * bands;
    Object.assign(canvas.dataset, { cellWidth: cw, cellHeight: ch, bands: bands, days: days,
                                    gapCount: doc.gap_count });
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (let b = 0; b < bands; b += 1) {
      const size = doc.bands[b].symbols;
      for (let d = 0; d < days; d += 1) {
        ctx.fillStyle = cellColor(doc.kinds[d], doc.present[b][d], doc.gaps[b][d], size);
        ctx.fillRect(d * cw, b * ch, cw, ch);
      }
    }
    canvas.onmousemove = (ev) => {
      const rect = canvas.getBoundingClientRect();
      const d = Math.floor((ev.clientX - rect.left) / cw);
      const b = Math.floor((ev.clientY - rect.top) / ch);
      if (d < 0 || d >= days || b < 0 || b >= bands) return;
      const band = doc.bands[b];
      const who = band.symbols === 1 ? band.first
        : band.first + " … " + band.last + " (" + band.symbols + " symbols)";
      $("cov-hover").textContent = doc.days[d] + " (" + doc.kinds[d] + ") " + who + ": " +
        doc.present[b][d] + " with rows, " + doc.gaps[b][d] + " missing";
    };
  }

  async function loadMarkets(api, q) {
    const found = await api("/coverage/markets", { table: q.table });
    const select = $("cov-market");
    select.textContent = "";
    for (const m of found.markets) {
      const option = document.createElement("option");
      option.value = m.market;
      option.textContent = m.market + " (" + m.symbols + " symbols, " + m.first + " to " +
        m.last + ")";
      select.append(option);
    }
    if (!q.market && found.markets.length) q.market = found.markets[0].market;
    select.value = q.market;
    return found.markets.length;
  }

  async function show(api, q) {
    $("cov-table").value = q.table;
    $("cov-start").value = q.start;
    $("cov-end").value = q.end;
    status("info", "Loading…");
    if (!(await loadMarkets(api, q))) {
      $("coverage-panel").hidden = true;
      status("empty", "No " + q.table + " in this lake yet.");
      return;
    }
    writeUrl(q);
    const doc = await api("/coverage/map", q);
    const calendar = doc.calendar ? "calendar " + doc.calendar : "no calendar: every day trades";
    $("cov-summary").textContent = doc.market + " · " + q.table + " · " + doc.symbols +
      " symbols in " + doc.bands.length + " band(s) × " + doc.days.length + " days (" +
      doc.days[0] + " to " + doc.days[doc.days.length - 1] + ") · " + calendar + " · " +
      doc.gap_count + " gap(s)";
    $("coverage-panel").hidden = false;
    status("", "");
    draw(doc);
    document.body.dataset.coverageReady = "1";
  }

  window.addEventListener("DOMContentLoaded", () => {
    const api = window.btlake.api;
    window.btlake.setupTokenButton();
    const run = (q) => show(api, q).catch((err) => status("error", err.message));
    $("coverage-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      run({ table: $("cov-table").value, market: $("cov-market").value,
            start: $("cov-start").value, end: $("cov-end").value });
    });
    $("cov-table").addEventListener("change", () => run({ table: $("cov-table").value,
                                                          market: "", start: "", end: "" }));
    run(readUrl());
  });
})();
