/* Galaxy controls injected into cellxgene's page through its `dataset.app.scripts` setting.
 *
 * "Finish and save to Galaxy" ends the session cleanly: the runtime writes the merged h5ad and
 * exits 0, so Galaxy collects every output. cellxgene autosaves labels every 2.5 s, so before
 * finishing we let one autosave cycle pass and wait for saves in flight: the last label a user
 * made must not be lost to a quick click.
 *
 * The same script is the list tool's landing page button (multi/landing.html): there it asks
 * first, finishes every dataset and shows #done. It also builds the one controls box that
 * export.js and multi.js add to (window.galaxyCellxgeneControls; this script loads first).
 */
(function () {
  "use strict";
  var AUTOSAVE_CYCLE_MS = 3000;
  var FINISH_LABEL = "Finish and save to Galaxy";
  var pendingSaves = 0;
  var lastSaveStarted = 0;
  var pendingGenes = 0; // gene (expression) requests in flight
  var lastStatus = null; // the last /galaxy/status answer
  var BUILD_POLL_MS = 1500;
  var buildPoll = null; // the one pending status poll while the store is built
  var statusFailures = 0; // status requests failed in a row (the session may have ended)

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function controls() {
    var box = document.getElementById("galaxy-cellxgene-controls");
    if (box) return box;
    box = el("div", { id: "galaxy-cellxgene-controls", role: "region", "aria-label": "Galaxy" });
    // Over one of cellxgene's sidebars (366 px wide), never over the plot: the embedding selector
    // sits at the plot's bottom left and must stay readable. Long status texts wrap instead of
    // growing the box sideways. place() picks the sidebar; until cellxgene has drawn its page the
    // box waits at the window's bottom right.
    box.style.cssText = "position:fixed;right:12px;bottom:12px;z-index:10000;display:flex;flex-wrap:wrap;" +
      "justify-content:flex-end;gap:6px 8px;align-items:center;max-width:min(342px, calc(100vw - 24px));" +
      "background:#fff;border:1px solid #c8ccd0;border-radius:4px;padding:6px 8px;" +
      "box-shadow:0 1px 4px rgba(0,0,0,.15);font-size:13px";
    document.body.appendChild(box);
    // Placed as soon as cellxgene draws its page, then on every resize; the slow check catches a
    // page cellxgene redraws (a reset, another dataset of the list tool).
    var watch = new MutationObserver(function () {
      if (place()) watch.disconnect();
    });
    if (!place()) watch.observe(document.body, { childList: true, subtree: true });
    window.addEventListener("resize", place);
    setInterval(place, 1000);
    return box;
  }
  window.galaxyCellxgeneControls = controls;

  // cellxgene's page is a grid (left sidebar | plot | right sidebar) at least 1240 px wide: in a
  // narrower window or frame (Galaxy's centre panel with its side panels open) the right sidebar
  // lies outside the view and a box at the window's right edge would cover the plot. So the box
  // goes into the grid (it scrolls with it), over the right sidebar when that is in view, else
  // over the left one.
  function place() {
    var box = document.getElementById("galaxy-cellxgene-controls");
    var grid = document.querySelector('div[style*="grid-template-columns"][style*="right-sidebar"]');
    if (!box || !grid) return false;
    if (box.parentNode !== grid) grid.appendChild(box);
    var right = grid.getBoundingClientRect().right <= document.documentElement.clientWidth + 1;
    box.style.position = "absolute";
    box.style.right = right ? "12px" : "auto";
    box.style.left = right ? "auto" : "12px";
    box.style.justifyContent = right ? "flex-end" : "flex-start";
    box.setAttribute("data-side", right ? "right" : "left");
    return true;
  }

  function postFinish(fetcher) {
    // The header proves the request comes from this page (web.FINISH_HEADER).
    return fetcher("galaxy/finish", { method: "POST", headers: { "X-Galaxy-Cellxgene": "finish" } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.message || "HTTP " + r.status);
          return body;
        });
      });
  }

  var landing = document.querySelector("button[data-galaxy-cellxgene-finish]");
  if (landing) {
    landing.addEventListener("click", function () {
      if (!window.confirm("Finish the session for every dataset and save the results to Galaxy?")) return;
      landing.disabled = true;
      landing.textContent = "Saving…";
      postFinish(window.fetch.bind(window))
        .then(function (s) {
          landing.textContent = "Finished";
          var done = document.getElementById("done");
          if (s.finish_error) done.textContent = "Finished with a problem: " + s.finish_error;
          done.hidden = false;
        })
        .catch(function (err) {
          landing.disabled = false;
          landing.textContent = FINISH_LABEL;
          window.alert("Finish failed: " + err);
        });
    });
    return;
  }

  function isSave(input, init) {
    var method = ((init && init.method) || (input && input.method) || "GET").toUpperCase();
    var url = typeof input === "string" ? input : (input && input.url) || "";
    return method === "PUT" && /annotations\/obs|genesets/.test(url);
  }

  function isGene(input) {
    var url = typeof input === "string" ? input : (input && input.url) || "";
    return /\/(data|summary)\/var\b/.test(url); // a gene, or a gene set's mean
  }

  var originalFetch = window.fetch.bind(window);
  window.fetch = function (input, init) {
    if (isGene(input)) {
      // A gene asked for while the column store is built waits on the server (no timeout in
      // cellxgene's client): the notice says so while it waits.
      pendingGenes += 1;
      showGeneNotice(lastStatus);
      return originalFetch(input, init).finally(function () {
        pendingGenes -= 1;
        showGeneNotice(lastStatus);
      });
    }
    if (!isSave(input, init)) return originalFetch(input, init);
    pendingSaves += 1;
    lastSaveStarted = Date.now();
    return originalFetch(input, init).finally(function () {
      pendingSaves -= 1;
      refreshStatus();
    });
  };

  var status = el("span", { id: "galaxy-cellxgene-status", "aria-live": "polite" }, "Galaxy: connected");
  var finish = el("button", { id: "galaxy-cellxgene-finish", type: "button" }, FINISH_LABEL);
  finish.style.cssText = "background:#2c3143;color:#fff;border:0;border-radius:3px;padding:5px 10px;cursor:pointer";

  // The notice of the column store (columns.py): while it is built the cells, labels and
  // embeddings work and a gene waits for it; the status is polled until the store is ready.
  var geneNotice = el("span", { id: "galaxy-cellxgene-genes", role: "status", "aria-live": "polite" });
  geneNotice.style.cssText = "flex-basis:100%;color:#6d4c00;background:#fff8e1;border-radius:3px;padding:4px 6px";
  geneNotice.hidden = true;

  function showGeneNotice(s) {
    var state = (s && s.column_copy) || "off";
    if (state === "building") {
      var pct = typeof s.column_copy_progress === "number" ? " " + Math.floor(s.column_copy_progress * 100) + "%" : "";
      geneNotice.textContent = "Preparing gene expression for fast access" + (pct ? ":" + pct : "…") + " — " +
        (pendingGenes ? "your gene opens when ready" : "genes open when ready") + "; everything else works now.";
      geneNotice.style.color = "#6d4c00";
      geneNotice.setAttribute("data-state", "building");
      geneNotice.hidden = false;
    } else if (state.indexOf("failed") === 0) {
      geneNotice.textContent = "Gene expression cannot be shown in this session (" + state.slice(8) +
        "); everything else works.";
      geneNotice.style.color = "#b00020";
      geneNotice.setAttribute("data-state", "failed");
      geneNotice.hidden = false;
    } else {
      geneNotice.setAttribute("data-state", state);
      geneNotice.hidden = true;
    }
  }

  function refreshStatus() {
    return originalFetch("galaxy/status", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        lastStatus = s;
        statusFailures = 0;
        showGeneNotice(s);
        if (s.column_copy === "building" && !s.finished) pollBuild();
        if (s.last_error) {
          status.textContent = s.last_error;
          status.style.color = "#b00020";
        } else if (s.last_save) {
          status.textContent = "Saved to Galaxy " + new Date(s.last_save * 1000).toLocaleTimeString();
          status.style.color = "#1b5e20";
        }
        return s;
      })
      .catch(function () {
        // The session may have ended; while the store was being built, ask again (a notice left
        // saying "building" after the store is ready would mislead).
        statusFailures += 1;
        if (lastStatus && lastStatus.column_copy === "building" && statusFailures < 20) pollBuild();
      });
  }

  function pollBuild() {
    if (!buildPoll) buildPoll = setTimeout(function () { buildPoll = null; refreshStatus(); }, BUILD_POLL_MS);
  }

  function waitForSaves() {
    var clicked = Date.now();
    return new Promise(function (resolve) {
      (function poll() {
        var quiet = Date.now() - Math.max(clicked, lastSaveStarted) >= AUTOSAVE_CYCLE_MS;
        if (pendingSaves === 0 && quiet) resolve();
        else setTimeout(poll, 200);
      })();
    });
  }

  function showDone(s) {
    var cover = el("div", { id: "galaxy-cellxgene-finished", role: "alertdialog" });
    cover.style.cssText = "position:fixed;inset:0;z-index:10001;background:rgba(255,255,255,.95);" +
      "display:flex;align-items:center;justify-content:center;flex-direction:column;font-size:16px";
    cover.appendChild(el("h2", {}, "Your work is saved to Galaxy"));
    var detail = (s.categories || []).length + " annotation categories, " +
      (s.gene_sets || []).length + " gene sets. You can close this tab; the datasets appear in your history.";
    cover.appendChild(el("p", {}, detail));
    if (s.finish_error) cover.appendChild(el("p", { style: "color:#b00020" }, s.finish_error));
    document.body.appendChild(cover);
  }

  finish.addEventListener("click", function () {
    finish.disabled = true;
    finish.textContent = "Saving last changes…";
    waitForSaves()
      .then(function () {
        return postFinish(originalFetch);
      })
      .then(showDone)
      .catch(function (e) {
        finish.disabled = false;
        finish.textContent = FINISH_LABEL;
        status.textContent = "Finish failed: " + e;
        status.style.color = "#b00020";
      });
  });

  function mount() {
    var box = controls();
    box.insertBefore(finish, box.firstChild);
    box.insertBefore(status, box.firstChild);
    box.insertBefore(geneNotice, box.firstChild);
    refreshStatus();
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
