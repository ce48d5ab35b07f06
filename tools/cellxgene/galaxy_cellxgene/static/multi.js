/* Several datasets in one session (multi/): a way back to the list of datasets.
 *
 * Each dataset's viewer lives at <entry point>/d/<name>/, the list at <entry point>/, so the
 * link is relative ("../../") and works under any Galaxy proxy prefix. Labels are saved per
 * dataset as the user works, so leaving a viewer loses nothing.
 */
(function () {
  "use strict";
  function mount() {
    var box = window.galaxyCellxgeneControls(); // finish.js, loaded first, builds the box
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
