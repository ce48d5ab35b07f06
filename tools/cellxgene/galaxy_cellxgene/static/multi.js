/* Several datasets in one session (multi.py): a way back to the list of datasets.
 *
 * Each dataset's viewer lives at <entry point>/d/<name>/, the list at <entry point>/, so the
 * link is relative ("../../") and works under any Galaxy proxy prefix. Labels are saved per
 * dataset as the user works, so leaving a viewer loses nothing.
 */
(function () {
  "use strict";
  function mount() {
    var box = document.getElementById("galaxy-cellxgene-controls");
    if (!box) {
      box = document.createElement("div");
      box.id = "galaxy-cellxgene-controls";
      // Same place as finish.js's box: inside the right sidebar, never over the plot.
      box.style.cssText = "position:fixed;right:12px;bottom:12px;z-index:10000;display:flex;flex-wrap:wrap;" +
        "justify-content:flex-end;gap:6px 8px;align-items:center;max-width:min(342px, calc(100vw - 24px));" +
        "background:#fff;border:1px solid #c8ccd0;border-radius:4px;padding:6px 8px;font-size:13px";
      document.body.appendChild(box);
    }
    if (document.getElementById("galaxy-cellxgene-datasets")) return;
    var link = document.createElement("a");
    link.id = "galaxy-cellxgene-datasets";
    link.href = "../../";
    link.textContent = "All datasets";
    link.style.cssText = "color:#0b5cad;font-weight:600;text-decoration:none;margin-right:4px";
    box.insertBefore(link, box.firstChild);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();
