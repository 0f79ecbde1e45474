// Dashboard behaviour: sortable and filterable tables, and live updates of running jobs by polling JSON.
(function () {
  "use strict";
  var POLL_MS = 2000;

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    return cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim().toLowerCase();
  }

  function makeSortable(table) {
    var headers = table.querySelectorAll("th[data-sort]");
    headers.forEach(function (th) {
      th.tabIndex = 0;
      th.setAttribute("role", "button");
      function sort() {
        var index = Array.prototype.indexOf.call(th.parentNode.children, th);
        var numeric = th.getAttribute("data-sort") === "number";
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, index), y = cellValue(b, index);
          var order = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) { if (event.key === "Enter") sort(); });
    });
  }

  function makeFilter(input) {
    var table = document.getElementById(input.getAttribute("data-filter-for"));
    if (!table) return;
    var counter = document.querySelector("[data-role=row-count]");
    function apply() {
      var words = input.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var text = row.textContent.toLowerCase();
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        row.hidden = !match;
        if (match) shown += 1;
      });
      if (counter) counter.textContent = "(" + shown + " shown)";
    }
    input.addEventListener("input", apply);
  }

  function poll(element, onData) {
    var url = element.getAttribute("data-live-url");
    var interval = parseInt(element.getAttribute("data-poll-ms"), 10) || POLL_MS;
    var stopped = false;
    function tick() {
      if (stopped) return;
      if (document.hidden) { setTimeout(tick, interval); return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data && onData(data) === false) stopped = true; })
        .catch(function () {})
        .then(function () { if (!stopped) setTimeout(tick, interval); });
    }
    setTimeout(tick, interval);
  }

  function setField(root, name, value) {
    var node = root.querySelector("[data-field=" + name + "]");
    if (node && node.textContent !== String(value)) node.textContent = value;
    return node;
  }

  function liveQueue(section) {
    poll(section, function (data) {
      setField(section, "depth", data.depth);
      setField(section, "queued_correctness", data.queued.correctness || 0);
      setField(section, "queued_training", data.queued.training || 0);
      setField(section, "running_count", data.running.length);
      var body = section.querySelector("[data-field=running_rows]");
      while (body.firstChild) body.removeChild(body.firstChild);
      if (!data.running.length) {
        var empty = body.insertRow();
        var cell = empty.insertCell();
        cell.colSpan = 5; cell.className = "muted"; cell.textContent = "Nothing is running.";
      }
      data.running.forEach(function (run) {
        var row = body.insertRow();
        var link = document.createElement("a");
        link.href = "/dashboard/submissions/" + run.submission_id;
        link.textContent = "#" + run.id;
        row.insertCell().appendChild(link);
        [run.student, run.assignment, run.stage, run.started_at].forEach(function (text) {
          row.insertCell().textContent = text;
        });
      });
    });
  }

  function liveRun(section) {
    var status = section.getAttribute("data-run-status");
    if (status === "graded" || status === "error" || status === "timeout" || status === "none") return;
    poll(section, function (data) {
      var node = setField(section, "status", data.status);
      if (node) node.className = "status status-" + data.status;
      setField(section, "score", data.score_text);
      setField(section, "progress", data.progress_text);
      if (data.finished) { refreshMain(); return false; }
    });
  }

  // Swap in the freshly rendered page content (checks, curve, history) without navigating.
  function refreshMain() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var current = document.querySelector("main");
        if (fresh && current) {
          current.replaceWith(fresh);
          init(fresh);
        }
      })
      .catch(function () {});
  }

  function liveStudents(table) {
    poll(table, function (data) {
      Object.keys(data.rows).forEach(function (userId) {
        var row = table.querySelector("tr[data-user-id='" + userId + "']");
        if (!row) return;
        var info = data.rows[userId];
        var statusNode = row.querySelector("[data-field=status] .status");
        if (statusNode && statusNode.textContent !== info.status) {
          statusNode.textContent = info.status;
          statusNode.className = "status status-" + info.status;
        }
        var latest = row.querySelector("[data-field=latest]");
        if (latest && info.latest !== null && latest.textContent !== info.latest_text) {
          latest.textContent = info.latest_text;
          latest.setAttribute("data-value", info.latest);
        }
      });
    });
  }

  function livePreview(section) {
    if (section.getAttribute("data-done") === "yes") return;
    poll(section, function (data) {
      if (data.done) { refreshMain(); return false; }
    });
  }

  function init(root) {
    root.querySelectorAll("table.sortable").forEach(makeSortable);
    root.querySelectorAll("input[data-filter-for]").forEach(makeFilter);
    root.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });
    var queue = root.querySelector("#live-queue");
    if (queue) liveQueue(queue);
    var run = root.querySelector("#current-run");
    if (run) liveRun(run);
    var students = root.querySelector("#students");
    if (students && students.getAttribute("data-live-url")) liveStudents(students);
    var preview = root.querySelector("#regrade-preview");
    if (preview) livePreview(preview);
    var similarity = root.querySelector("#similarity-report");
    if (similarity) livePreview(similarity);
    var board = root.querySelector("#leaderboard");
    if (board) poll(board, function (data) {
      if (data.version !== board.getAttribute("data-version")) { refreshMain(); return false; }
    });
    document.body.setAttribute("data-ready", "yes");
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
})();
