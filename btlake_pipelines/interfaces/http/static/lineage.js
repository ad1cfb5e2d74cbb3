/* btlake lake browser, tags and lineage: the tag list (what each tag pins) and a run's inputs
 * (resolved versions, stale flags, the diff that made an input stale). Uses the helpers app.js
 * exposes on window.btlake; everything from the lake is inserted as text. */
(function () {
  "use strict";

  const B = window.btlake;
  if (!B || !B.api) return;
  const { api, el, clear } = B;
  const page = document.body.dataset.page;

  async function initTags() {
    B.setupTokenButton();
    const table = clear(document.getElementById("tags"));
    let doc;
    try {
      doc = await api("/tags");
    } catch (err) {
      B.errorBox(err);
      return;
    }
    table.append(el("thead", {}, el("tr", {},
      ["name", "created", "message", "pins"].map((h) => el("th", { text: h })))));
    const body = el("tbody");
    for (const tag of doc.tags) {
      const pins = Object.entries(tag.versions).map(([t, v]) => t + "@" + v).join(", ");
      body.append(el("tr", { dataset: { tag: tag.name } },
        el("td", { class: "mono", text: tag.name }), el("td", { text: B.fmtTime(tag.created_at) }),
        el("td", { text: tag.message || "" }), el("td", { class: "mono", text: pins })));
    }
    if (!doc.tags.length) {
      body.append(el("tr", {}, el("td", { colspan: 4, class: "muted", text: "no tags yet" })));
    }
    table.append(body);
  }

  async function initInputs() {
    const holder = document.getElementById("run");
    const table = document.getElementById("inputs");
    if (!holder || !table) return;
    const runId = holder.dataset.runId;
    let doc;
    try {
      doc = await api("/runs/" + encodeURIComponent(runId) + "/lineage");
    } catch (err) {
      table.replaceWith(el("p", { class: "muted", text: "inputs unavailable: " + err.message }));
      return;
    }
    clear(table);
    if (!doc.inputs.length) {
      table.append(el("tbody", {}, el("tr", {}, el("td", { class: "muted",
        text: "this run's manifest lists no inputs" }))));
      return;
    }
    table.append(el("thead", {}, el("tr", {},
      ["table", "market", "symbols", "start", "end", "version", "stale", ""].map(
        (h) => el("th", { text: h })))));
    const body = el("tbody");
    for (const input of doc.inputs) {
      const diff = input.stale && input.version !== null
        ? el("button", { type: "button", class: "link",
                         onclick: () => showDiff(input), text: "what changed" })
        : "";
      body.append(el("tr", { class: input.stale ? "stale" : "" },
        el("td", { text: input.table }), el("td", { text: input.market }),
        el("td", { text: input.symbols.length ? input.symbols.join(", ") : "all" }),
        el("td", { text: B.fmtTime(input.start) }), el("td", { text: B.fmtTime(input.end) }),
        el("td", { class: "mono", text: input.version === null ? "-" : input.version }),
        el("td", { text: input.stale ? "stale" : "current" }), el("td", {}, diff)));
    }
    table.append(body);
  }

  async function showDiff(input) {
    const box = clear(document.getElementById("inputs-diff"));
    let latest;
    try {
      const history = await api("/tables/" + encodeURIComponent(input.table) + "/history");
      latest = history.versions[0].version;
      const doc = await api("/tables/" + encodeURIComponent(input.table) + "/diff",
        { a: input.version, b: latest });
      box.append(el("p", { text: input.table + " version " + doc.a + " -> " + doc.b + ": +"
        + doc.added + " / -" + doc.removed + " rows" }));
      const table = el("table", { class: "data", id: "inputs-diff-table" });
      table.append(el("thead", {}, el("tr", {},
        ["market", "date", "added", "removed"].map((h) => el("th", { text: h })))));
      const body = el("tbody");
      for (const part of doc.partitions) {
        body.append(el("tr", {}, el("td", { text: part.market || "" }),
          el("td", { text: part.date || "" }), el("td", { text: part.added }),
          el("td", { text: part.removed })));
      }
      table.append(body);
      box.append(table);
    } catch (err) {
      box.append(el("p", { class: "muted", text: "diff unavailable: " + err.message }));
    }
  }

  if (page === "tags") initTags();
  else if (page === "run") initInputs();
})();
