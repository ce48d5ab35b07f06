/*
 * "New dataset from cells": pick a category (one of your label categories, or a label column of the
 * dataset such as a clustering) and some of its labels; the runtime writes an h5ad of exactly those
 * cells beside the viewer and sends it to your history ("Add to history now"), or writes it into the
 * job's outputs at Finish ("Save at Finish"). The viewer stays usable while it is written.
 *
 * Loaded through cellxgene's `dataset.app.scripts`, after finish.js (which builds the controls box).
 * Routes (subset_routes.py): GET galaxy/subset, POST galaxy/subset, GET galaxy/subset/<id>.
 */
(function () {
  "use strict";

  var ROUTE = "galaxy/subset";
  var AUTOSAVE_WAIT_MS = 15000;
  var POLL_MS = 1500;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // The subset is made from the labels the runtime has: let cellxgene's autosave land first.
  async function waitForAutosave() {
    var deadline = Date.now() + AUTOSAVE_WAIT_MS;
    for (;;) {
      var box = document.getElementById("autosave");
      var text = box ? box.textContent || "" : "All saved";
      if (text.indexOf("Autosave error") !== -1) throw new Error("cellxgene could not save your latest labels.");
      if (text.indexOf("Unsaved") === -1) return;
      if (Date.now() > deadline) throw new Error("cellxgene has not saved your latest labels yet; try again.");
      await sleep(250);
    }
  }

  async function getJson(url, init) {
    var response = await fetch(url, Object.assign({ cache: "no-store", headers: { Accept: "application/json" } }, init || {}));
    var body;
    try {
      body = await response.json();
    } catch (ignored) {
      body = { ok: false, message: "The viewer answered HTTP " + response.status + "." };
    }
    body.httpStatus = response.status;
    return body;
  }

  function build(info) {
    var box = window.galaxyCellxgeneControls();
    var open = el("button", { id: "galaxy-cellxgene-subset", type: "button", class: "bp3-button",
      "data-testid": "galaxy-subset", "aria-expanded": "false",
      title: "Make a new h5ad dataset holding only the cells with the labels you choose." }, "New dataset from cells");
    var panel = el("div", { id: "galaxy-cellxgene-subset-panel", role: "group", "aria-label": "New dataset from cells" });
    panel.style.cssText = "flex-basis:100%;display:none;flex-direction:column;gap:4px;font-size:12px";
    var category = el("select", { id: "galaxy-cellxgene-subset-category", "aria-label": "Category" });
    var labels = el("div", { id: "galaxy-cellxgene-subset-labels", role: "group", "aria-label": "Labels" });
    labels.style.cssText = "max-height:120px;overflow:auto;border:1px solid #d8dde0;padding:2px 4px";
    var actions = el("div", {});
    actions.style.cssText = "display:flex;gap:6px;flex-wrap:wrap";
    var now = el("button", { id: "galaxy-cellxgene-subset-now", type: "button", class: "bp3-button" }, "Add to history now");
    var later = el("button", { id: "galaxy-cellxgene-subset-finish", type: "button", class: "bp3-button" }, "Save at Finish");
    var status = el("span", { id: "galaxy-cellxgene-subset-status", role: "status", "data-testid": "galaxy-subset-status" });
    status.style.cssText = "max-width:100%;overflow-wrap:anywhere";
    if (info.now) actions.appendChild(now);
    if (info.at_finish) actions.appendChild(later);
    panel.appendChild(category);
    panel.appendChild(labels);
    panel.appendChild(actions);
    panel.appendChild(status);
    var categories = info.categories || {};

    function show(text, kind) {
      status.textContent = text;
      status.setAttribute("data-state", kind);
      status.style.color = kind === "error" ? "#c23030" : kind === "ok" ? "#0d8050" : "#5c7080";
    }

    function fillLabels() {
      labels.textContent = "";
      (categories[category.value] || []).forEach(function (name, i) {
        var id = "galaxy-cellxgene-subset-label-" + i;
        var row = el("label", { for: id });
        row.style.cssText = "display:block;white-space:nowrap";
        var box = el("input", { type: "checkbox", id: id, value: name });
        row.appendChild(box);
        row.appendChild(document.createTextNode(" " + name));
        labels.appendChild(row);
      });
    }

    function fillCategories() {
      var kept = category.value;
      category.textContent = "";
      Object.keys(categories).forEach(function (name) { category.appendChild(el("option", { value: name }, name)); });
      if (kept && categories[kept]) category.value = kept;
      fillLabels();
    }

    async function refresh() {
      var fresh = await getJson(ROUTE);
      if (fresh.categories) categories = fresh.categories;
      fillCategories();
    }

    function chosen() {
      return Array.prototype.slice.call(labels.querySelectorAll("input:checked")).map(function (b) { return b.value; });
    }

    async function follow(id) {
      for (;;) {
        var state = await getJson(ROUTE + "/" + id);
        if (state.state === "sent") return show("In your Galaxy history: " + state.message, "ok");
        if (state.state === "error" || !state.ok) throw new Error(state.message || "the subset failed");
        show((state.state === "uploading" ? "Sending to Galaxy: " : "Writing ") + state.title + "…", "busy");
        await sleep(POLL_MS);
      }
    }

    async function ask(when, button) {
      var picked = chosen();
      if (!picked.length) return show("Tick at least one label.", "error");
      button.disabled = true;
      try {
        await waitForAutosave();
        var body = await getJson(ROUTE, {
          method: "POST",
          // Proves the request comes from this page (web.FINISH_HEADER).
          headers: { Accept: "application/json", "Content-Type": "application/json", "X-Galaxy-Cellxgene": "subset" },
          body: JSON.stringify({ category: category.value, labels: picked, when: when }),
        });
        if (body.httpStatus !== 202) throw new Error(body.message || "refused");
        if (when === "finish") {
          show("Will be saved at Finish: " + body.title, "ok");
        } else {
          show("Under way: " + body.title + ". You can keep working.", "busy");
          await follow(body.id);
        }
      } catch (err) {
        show("New dataset failed: " + (err && err.message ? err.message : err), "error");
      } finally {
        button.disabled = false;
      }
    }

    category.addEventListener("change", fillLabels);
    now.addEventListener("click", function () { ask("now", now); });
    later.addEventListener("click", function () { ask("finish", later); });
    open.addEventListener("click", function () {
      var opening = panel.style.display === "none";
      panel.style.display = opening ? "flex" : "none";
      open.setAttribute("aria-expanded", String(opening));
      if (opening) refresh();
    });
    fillCategories();
    box.appendChild(open);
    box.appendChild(panel);
  }

  function start() {
    getJson(ROUTE)
      .then(function (info) { if (info.now || info.at_finish) build(info); })
      .catch(function () { /* no subset route: no button */ });
  }
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
