// Replays pages: the start form's version list and "start from this version's prompt", and live
// progress of running replays (the report page reloads once its replay has finished).
(function () {
  "use strict";
  function $(sel, root) { return (root || document).querySelector(sel); }
  function getJSON(path) {
    return fetch(path, { headers: { "Accept": "application/json" }, credentials: "same-origin" }).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    });
  }
  function running(status) { return status === "queued" || status === "running"; }

  // poll calls the replay's API every second while it runs, passing each answer to update.
  function poll(id, update) {
    getJSON("/api/v1/replays/" + encodeURIComponent(id)).then(function (r) {
      update(r);
      if (running(r.status)) setTimeout(function () { poll(id, update); }, 1000);
    }, function () { setTimeout(function () { poll(id, update); }, 3000); });
  }

  function form() {
    var asst = $("#r-assistant"), version = $("#r-version"), load = $("#r-load-prompt"), prompt = $("#r-prompt");
    if (!asst) return;
    var chosen = version.value;
    function fill() {
      while (version.options.length > 1) version.remove(1);
      load.hidden = !asst.value;
      if (!asst.value) return;
      getJSON("/api/v1/assistants/" + encodeURIComponent(asst.value) + "/versions").then(function (res) {
        res.data.slice().reverse().forEach(function (v) {
          var o = document.createElement("option");
          o.value = String(v.version);
          o.textContent = "Version " + v.version + (v.current ? " (current)" : "") + " — " + v.created_at.slice(0, 16).replace("T", " ");
          if (String(v.version) === chosen) o.selected = true;
          version.appendChild(o);
        });
        version.dataset.loaded = "true";
      });
    }
    asst.addEventListener("change", function () { chosen = ""; fill(); });
    load.addEventListener("click", function () {
      var v = version.value || (asst.selectedOptions[0] && asst.selectedOptions[0].dataset.version);
      getJSON("/api/v1/assistants/" + encodeURIComponent(asst.value) + "/versions/" + encodeURIComponent(v)).then(function (snap) {
        prompt.value = snap.system_prompt;
        prompt.focus();
      });
    });
    fill();
  }

  function list() {
    Array.prototype.forEach.call(document.querySelectorAll("#replay-list tr[data-id]"), function (row) {
      if (!running(row.dataset.status)) return;
      poll(row.dataset.id, function (r) {
        var s = row.querySelector("[data-field=status]");
        s.textContent = r.status;
        s.className = "rstatus rstatus-" + r.status;
        row.querySelector("[data-field=progress]").textContent = r.progress.done + "/" + r.progress.total;
        var bar = row.querySelector("progress");
        bar.max = r.progress.total; bar.value = r.progress.done;
        if (!running(r.status)) row.dataset.status = r.status;
      });
    });
  }

  function report() {
    var head = $("#replay-head");
    if (!head || !running(head.dataset.status)) return;
    poll(head.dataset.id, function (r) {
      $("#replay-status").textContent = r.status;
      $("#replay-progress").textContent = r.progress.done + "/" + r.progress.total + " conversations";
      var bar = $("#replay-bar");
      bar.max = r.progress.total; bar.value = r.progress.done;
      if (!running(r.status)) location.reload();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.getAttribute("data-page");
    if (page === "replays") { form(); list(); }
    if (page === "replay") report();
  });
})();
