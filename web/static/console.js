// consentry console: live ingest numbers on the dashboard (polls
// /status.json every 3 s while the page is visible). No other script runs;
// every page works without it.
(function () {
  "use strict";
  var live = document.querySelectorAll("[data-live]");
  if (!live.length) return;
  function pick(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  function refresh() {
    if (document.hidden) return;
    fetch("/status.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        live.forEach(function (el) {
          var v = pick(data, el.getAttribute("data-live"));
          el.textContent = v == null ? "0" : String(v);
        });
        var workers = document.getElementById("workers");
        if (workers && data.workers) {
          workers.textContent = "";
          data.workers.forEach(function (w) {
            var li = document.createElement("li");
            var name = document.createElement("strong");
            name.textContent = w.name;
            li.appendChild(name);
            li.appendChild(document.createTextNode(" " + w.state + " "));
            var detail = document.createElement("span");
            detail.className = "muted";
            detail.textContent = w.detail || "";
            li.appendChild(detail);
            workers.appendChild(li);
          });
        }
      })
      .catch(function () { /* the next poll tries again */ });
  }
  setInterval(refresh, 3000);
})();
