/*
 * "Export to Galaxy": copy the current annotations and gene sets into the user's Galaxy
 * history without ending the session. The page only talks to this runtime
 * (POST galaxy/export, relative to the entry point); the runtime calls Galaxy with the owner's own Galaxy session (no API key).
 *
 * Loaded through cellxgene's `dataset.app.scripts`, after finish.js, at the end of <body>.
 */
(function () {
  "use strict";

  var ROUTE = "galaxy/export";
  // cellxgene autosaves every 2.5 s; give a pending save this long to land before exporting,
  // so the export holds what the user sees rather than the previous save.
  var AUTOSAVE_WAIT_MS = 15000;
  var UPLOAD_WAIT_MS = 180000;

  function container() {
    return window.galaxyCellxgeneControls(); // finish.js, loaded first, builds the box
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  // cellxgene shows its save state in #autosave: "Unsaved", "All saved" or "Autosave error: ...".
  async function waitForAutosave() {
    var deadline = Date.now() + AUTOSAVE_WAIT_MS;
    for (;;) {
      var box = document.getElementById("autosave");
      var text = box ? box.textContent || "" : "All saved";
      if (text.indexOf("Autosave error") !== -1) {
        throw new Error("cellxgene could not save your latest changes (" + text.trim() + ").");
      }
      if (text.indexOf("Unsaved") === -1) return;
      if (Date.now() > deadline) {
        throw new Error("cellxgene has not saved your latest changes yet; try again in a moment.");
      }
      await sleep(250);
    }
  }

  function names(body) {
    return (body.datasets || [])
      .map(function (d) {
        return (d.hid ? "#" + d.hid + " " : "") + (d.kind || d.name);
      })
      .join(", ");
  }

  async function getJson(url) {
    var response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    try {
      return await response.json();
    } catch (ignored) {
      return { ok: false, message: "The viewer answered HTTP " + response.status + "." };
    }
  }

  // Galaxy accepted the files; its upload job then runs like any other job. Follow it so
  // the user learns whether the datasets really landed.
  async function followUpload(body, show) {
    var deadline = Date.now() + UPLOAD_WAIT_MS;
    var pending = (body.jobs || []).slice();
    while (pending.length) {
      var next = [];
      for (var i = 0; i < pending.length; i++) {
        var job = await getJson(ROUTE + "/jobs/" + encodeURIComponent(pending[i]));
        if (!job.ok) throw new Error(job.message || "Galaxy could not store the export.");
        if (job.state !== "ok") next.push(pending[i]);
      }
      pending = next;
      if (!pending.length) break;
      if (Date.now() > deadline) {
        show("Galaxy is still storing " + names(body) + "; it will appear in your history.", "busy");
        return;
      }
      show("Galaxy is storing " + names(body) + "…", "busy");
      await sleep(2000);
    }
    show("Added to your Galaxy history: " + names(body), "ok");
  }

  function build() {
    var wrap = document.createElement("span");
    wrap.style.cssText = "display:inline-flex;flex-wrap:wrap;justify-content:flex-end;gap:6px 8px;align-items:center;";

    var button = document.createElement("button");
    button.type = "button";
    button.id = "galaxy-cellxgene-export";
    button.className = "bp3-button";
    button.setAttribute("data-testid", "galaxy-export");
    button.title =
      "Copy the current labels and gene sets into your Galaxy history as new datasets. The session keeps running.";
    button.textContent = "Export to Galaxy";

    var status = document.createElement("span");
    status.id = "galaxy-cellxgene-export-status";
    status.setAttribute("data-testid", "galaxy-export-status");
    status.setAttribute("role", "status");
    status.style.cssText =
      "max-width:100%;font-size:12px;background:rgba(255,255,255,0.9);padding:2px 4px;border-radius:3px;";

    function show(text, kind) {
      status.textContent = text;
      status.setAttribute("data-state", kind);
      status.style.color = kind === "error" ? "#c23030" : kind === "ok" ? "#0d8050" : "#5c7080";
    }

    button.addEventListener("click", async function () {
      button.disabled = true;
      show("Waiting for cellxgene to save…", "busy");
      try {
        await waitForAutosave();
        show("Exporting to Galaxy…", "busy");
        var response = await fetch(ROUTE, {
          method: "POST",
          cache: "no-store",
          // Proves the request comes from this page (see CSRF_HEADER in galaxy_export.py).
          headers: { Accept: "application/json", "X-Galaxy-Cellxgene": "export" },
        });
        var body = {};
        try {
          body = await response.json();
        } catch (ignored) {
          body = { message: "The viewer answered HTTP " + response.status + "." };
        }
        if (!response.ok || !body.ok) throw new Error(body.message || "Export failed.");
        await followUpload(body, show);
      } catch (err) {
        show("Export failed: " + (err && err.message ? err.message : err), "error");
      } finally {
        button.disabled = false;
      }
    });

    wrap.appendChild(button);
    wrap.appendChild(status);
    container().appendChild(wrap);
  }

  // Only show the button when the runtime can reach Galaxy (it answers 501 otherwise).
  fetch(ROUTE, { cache: "no-store", headers: { Accept: "application/json" } })
    .then(function (response) {
      return response.ok ? response.json() : null;
    })
    .then(function (info) {
      if (info && info.enabled) build();
    })
    .catch(function () {
      /* no export route: the button stays hidden */
    });
})();
