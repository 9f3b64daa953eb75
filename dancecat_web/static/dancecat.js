/* DanceCat's page script. Every page works without it (forms post and re-render); this
   makes the same actions happen in place: the SQL editor, schedule and recipient blocks,
   the preview, Test Connection, Run and the live tracker statuses.
   Loaded as a file because the CSP forbids inline script. */
(function () {
  "use strict";

  var POLL_MS = 1500;

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function post(url, body, accept) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Accept": accept || "application/json" }
    });
  }

  /* Move focus to what an action produced (a result, a status line, a wrong field), so a
     keyboard or screen-reader user lands on it instead of on <body>. */
  function focusOn(element) {
    if (!element) { return; }
    if (!element.matches("a[href], button, input, select, textarea, [tabindex]")) {
      element.setAttribute("tabindex", "-1");
    }
    element.focus();
  }

  function busy(button, on) {
    if (!button) { return; }
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  /* ---- SQL editor ----------------------------------------------------------------
     CodeMirror is not part of the page load: building it takes the main thread long
     enough to delay a phone's first use of the form (issue 17: Lighthouse ≥ 95 on mobile).
     The plain, labelled textarea shows the query and works meanwhile; the first time it
     takes focus (click, Tab, its label, a wrong-field jump) the editor's files are loaded
     and the editor replaces it, keeping what was typed and where the caret was. The
     textarea stays the form field (CodeMirror writes back to it), so nothing is lost or
     doubled. Whatever needs the editor (an error mark, the schema browser's insert and
     completion, Format SQL) asks for it through editorReady(). */
  var editor = null;
  var editorPromise = null;

  function loadFile(tag, url) {
    return new Promise(function (resolve, reject) {
      var element = document.createElement(tag);
      if (tag === "link") {
        element.rel = "stylesheet";
        element.href = url;
      } else {
        element.src = url;
        element.async = false;  // run in the order inserted: the mode after the core
      }
      element.onload = resolve;
      element.onerror = function () { reject(new Error(url + " did not load")); };
      document.head.appendChild(element);
    });
  }

  function editorFiles(form, name) {
    return (form.getAttribute(name) || "").split(/\s+/).filter(Boolean);
  }

  /* The editor, built once (a promise: its files may still be on their way). */
  function editorReady() {
    var area = $("#query");
    var form = $("#job-form");
    if (!area || !form) { return Promise.reject(new Error("no query field")); }
    if (!editorPromise) {
      var files = editorFiles(form, "data-editor-styles").map(function (url) { return loadFile("link", url); })
        .concat(editorFiles(form, "data-editor-scripts").map(function (url) { return loadFile("script", url); }));
      editorPromise = Promise.all(files).then(function () { return buildEditor(area); });
      editorPromise.catch(function () { editorPromise = null; });  // the textarea stays; try again later
    }
    return editorPromise;
  }

  function buildEditor(area) {
    if (editor) { return editor; }
    var focused = document.activeElement === area;
    var start = area.selectionStart;
    var end = area.selectionEnd;
    var scroll = area.scrollTop;
    editor = window.CodeMirror.fromTextArea(area, {
      mode: "text/x-sql",
      lineNumbers: true,
      indentUnit: 4,
      lineWrapping: false,
      screenReaderLabel: "Query",
      extraKeys: {
        // Keyboard users must be able to leave the editor.
        "Tab": false,
        "Shift-Tab": false,
        "Ctrl-Enter": runPreview,
        "Cmd-Enter": runPreview
      }
    });
    var label = $("#query-label");
    if (label) { label.addEventListener("click", function () { editor.focus(); }); }
    var hint = area.getAttribute("aria-describedby");
    var input = editor.getInputField();
    if (hint) { input.setAttribute("aria-describedby", hint); }
    if (area.getAttribute("aria-invalid")) { input.setAttribute("aria-invalid", "true"); }
    input.setAttribute("aria-labelledby", "query-label");
    editor.on("change", function () { editor.save(); clearErrorMark(); });
    if (focused) {
      editor.focus();
      editor.setSelection(editor.posFromIndex(start), editor.posFromIndex(end));
      editor.scrollTo(null, scroll);
    }
    // The schema browser (schema.js) completes names in this editor once it exists.
    area.dispatchEvent(new CustomEvent("dancecat:editor", { bubbles: true, detail: editor }));
    return editor;
  }

  function runPreview() {
    var button = $("#preview-job");
    if (button) { button.click(); }
  }

  function setupEditor() {
    var area = $("#query");
    if (!area || !$("#job-form")) { return; }
    area.addEventListener("focus", function () { editorReady().catch(function () { /* the textarea works */ }); });
    // Until the editor replaces it, the textarea runs the preview on the same keys.
    area.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        runPreview();
      }
    });
    window.DanceCat = { editor: editorReady };
    // Fetched (not run) once the page is idle, so the first focus does not wait on the network.
    window.addEventListener("load", function () {
      (window.requestIdleCallback || window.setTimeout)(function () {
        var form = $("#job-form");
        editorFiles(form, "data-editor-styles").concat(editorFiles(form, "data-editor-scripts")).forEach(function (url) {
          var link = document.createElement("link");
          link.rel = "prefetch";
          link.href = url;
          document.head.appendChild(link);
        });
      });
    });
  }

  /* Point at the place a failed preview's database error names (data-error-line/-column
     on the error box, 1-based): that line tinted, the token from that column underlined,
     and a button that puts the cursor there. */
  var errorMark = null;
  var errorLine = null;
  function clearErrorMark() {
    if (errorMark) { errorMark.clear(); errorMark = null; }
    if (errorLine !== null) { editor.removeLineClass(errorLine, "background", "cm-error-line"); errorLine = null; }
  }
  function markError(root) {
    var box = $("[data-error-line]", root);
    if (!box) { return; }
    editorReady().then(function () { markErrorIn(box); }).catch(function () { /* no editor: no mark */ });
  }
  function markErrorIn(box) {
    clearErrorMark();
    var line = Math.min(parseInt(box.getAttribute("data-error-line"), 10) - 1, editor.lastLine());
    var text = editor.getLine(line) || "";
    var ch = Math.min(parseInt(box.getAttribute("data-error-column"), 10) - 1, text.length);
    var end = ch;
    while (end < text.length && /[\w$."`]/.test(text.charAt(end))) { end += 1; }
    if (end === ch) { end = Math.min(ch + 1, text.length); }
    errorLine = editor.addLineClass(line, "background", "cm-error-line");
    errorMark = editor.markText({ line: line, ch: ch }, { line: line, ch: end }, { className: "cm-error-mark" });
    var show = $("[data-show-error]", box);
    if (show) {
      show.hidden = false;
      show.addEventListener("click", function () {
        editor.focus();
        editor.setCursor({ line: line, ch: ch });
        editor.scrollIntoView({ line: line, ch: ch }, 80);
      });
    }
  }

  /* ---- Schedule and recipient blocks -------------------------------------------- */
  var counters = { schedule: 0, recipient: 0 };

  function cloneTemplate(id, index) {
    var template = document.getElementById(id);
    var holder = document.createElement("div");
    holder.innerHTML = template.innerHTML.replace(/__i__/g, String(index));
    return holder.firstElementChild;
  }

  function refreshNextRuns(block) {
    var box = $("[data-role=next]", block);
    var type = $("[data-role=type]", block).value;
    var start = $("[data-role=start]", block).value;
    var cronField = $("[data-role=cron-field]", block);
    var readsCron = (block.getAttribute("data-cron-types") || "").split(" ").indexOf(type) >= 0;
    cronField.hidden = !readsCron;
    if (!start) {
      box.textContent = "";
      var why = document.createElement("p");
      why.className = "sub";
      why.textContent = box.getAttribute("data-empty") || "";
      box.appendChild(why);
      return;
    }
    var params = new URLSearchParams({
      type: type,
      start: start,
      timezone: $("[data-role=timezone]", block).value,
      cron: readsCron ? $("[data-role=cron]", block).value : ""
    });
    fetch(block.getAttribute("data-next-url") + "?" + params.toString(), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) { return response.json(); }).then(function (answer) {
      box.textContent = "";
      if (answer.error) {
        var p = document.createElement("p");
        p.className = "sub";
        p.textContent = answer.error;
        box.appendChild(p);
        return;
      }
      var title = document.createElement("p");
      title.className = "sub";
      title.textContent = "Next runs:";
      var list = document.createElement("ol");
      answer.runs.forEach(function (run) {
        var item = document.createElement("li");
        item.textContent = run.local;
        if (run.utc !== run.local) {
          var utc = document.createElement("span");
          utc.className = "sub";
          utc.textContent = "(" + run.utc + ")";
          item.appendChild(document.createTextNode(" "));
          item.appendChild(utc);
        }
        list.appendChild(item);
      });
      box.appendChild(title);
      box.appendChild(list);
    }).catch(function () { box.textContent = ""; });
  }

  function watchSchedule(block) {
    var timer = null;
    function later() { clearTimeout(timer); timer = setTimeout(function () { refreshNextRuns(block); }, 250); }
    block.addEventListener("input", later);
    block.addEventListener("change", later);
  }

  function setupBlocks(form) {
    var schedules = $("[data-schedules]", form);
    var recipients = $("[data-recipients]", form);
    if (!schedules) { return; }
    counters.schedule = $all("fieldset.schedule", schedules).length + 1000;
    counters.recipient = $all("li", recipients).length + 1000;
    $all("fieldset.schedule", schedules).forEach(watchSchedule);

    form.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button || !form.contains(button)) { return; }
      var add = button.getAttribute("data-add");
      var remove = button.getAttribute("data-remove");
      if (add === "schedule") {
        event.preventDefault();
        var block = cloneTemplate("schedule-template", counters.schedule++);
        schedules.appendChild(block);
        watchSchedule(block);
        $("[data-role=type]", block).focus();
      } else if (add === "recipient") {
        event.preventDefault();
        var item = cloneTemplate("recipient-template", counters.recipient++);
        recipients.appendChild(item);
        $("input", item).focus();
      } else if (remove) {
        event.preventDefault();
        var gone = button.closest(remove === "schedule" ? "fieldset.schedule" : "li");
        if (gone) { gone.remove(); }
        var next = $("[data-add=" + remove + "]", form);
        if (next) { next.focus(); }
      }
    });
  }

  /* ---- Preview (the form's Run button) ------------------------------------------- */
  function setupPreview(form) {
    var button = $("#preview-job");
    var slot = $("#preview-slot");
    if (!button || !slot) { return; }
    button.addEventListener("click", function (event) {
      event.preventDefault();
      if (editor) { editor.save(); }
      busy(button, true);
      slot.innerHTML = '<p class="sub" role="status">Running the query…</p>';
      post(form.getAttribute("data-preview-url"), new FormData(form), "text/html")
        .then(function (response) { return response.text(); })
        .then(function (html) {
          slot.innerHTML = html;  // rendered and escaped by the server's template
          markError(slot);
          var box = $("#preview", slot);
          if (box) { box.focus(); }
        })
        .catch(function () { slot.innerHTML = '<p class="error-box" role="alert">The preview could not be fetched; try again.</p>'; })
        .then(function () { busy(button, false); });
    });
  }

  /* ---- Test Connection ------------------------------------------------------------ */
  function setupConnectionTest() {
    var form = $("#connection-form");
    var button = $("#test-connection");
    var box = $("#check-result");
    if (!form || !button || !box) { return; }
    button.addEventListener("click", function (event) {
      event.preventDefault();
      busy(button, true);
      box.innerHTML = '<p class="sub">Connecting…</p>';
      post(form.getAttribute("data-test-url"), new FormData(form))
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          var p = document.createElement("p");
          if (answer.ok) {
            p.className = "ok-box";
            p.textContent = "Connected in " + answer.elapsed_ms + " ms.";
          } else {
            p.className = "error-box";
            p.textContent = "Could not connect: " + (answer.error || "unknown error");
          }
          box.textContent = "";
          box.appendChild(p);
        })
        .catch(function () { box.innerHTML = '<p class="error-box">The test could not be run; try again.</p>'; })
        .then(function () { busy(button, false); focusOn(box.firstElementChild); });
    });
  }

  /* ---- Run buttons and live trackers -------------------------------------------- */
  var pollTimer = null;

  function trackerBody() { return $("#trackers"); }

  function unfinished() {
    var body = trackerBody();
    if (!body) { return []; }
    return $all("tr[data-finished=false]", body).map(function (row) { return row.getAttribute("data-tracker"); });
  }

  function schedulePoll() {
    if (pollTimer === null && unfinished().length) {
      pollTimer = setTimeout(poll, POLL_MS);
    }
  }

  function poll() {
    pollTimer = null;
    var ids = unfinished();
    var body = trackerBody();
    if (!ids.length || !body) { return; }
    fetch(body.getAttribute("data-status-url") + "?ids=" + ids.join(","), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) { return response.json(); }).then(function (answer) {
      answer.trackers.forEach(function (tracker) {
        var row = document.getElementById("tracker-" + tracker.id);
        if (!row) { return; }
        var holder = document.createElement("tbody");
        holder.innerHTML = tracker.html.trim();
        var fresh = holder.firstElementChild;
        if (row.className.indexOf("tracker-") >= 0 && row.className !== fresh.className) {
          fresh.classList.add("changed");
        }
        row.replaceWith(fresh);
      });
      (answer.latest || []).forEach(function (latest) {
        $all('[data-latest-job="' + latest.job_id + '"]').forEach(function (cell) {
          var holder = document.createElement("div");
          holder.innerHTML = latest.html.trim();
          cell.replaceWith(holder.firstElementChild);
        });
      });
    }).catch(function () { /* try again next tick */ }).then(schedulePoll);
  }

  function showMessage(text, kind) {
    var main = $("#content");
    var box = $(".flashes", main);
    if (!box) {
      box = document.createElement("div");
      box.className = "flashes";
      box.setAttribute("role", "status");
      main.insertBefore(box, main.firstChild);
    }
    var p = document.createElement("p");
    p.className = "flash flash-" + kind;
    p.textContent = text;
    box.appendChild(p);
    focusOn(p);
  }

  function setupRunForms() {
    $all("form.run-form").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        var body = trackerBody();
        if (!body) { return; }  // no tracker table here: let the form post and redirect
        event.preventDefault();
        var button = $("button", form);
        busy(button, true);
        post(form.action, new FormData(form)).then(function (response) {
          return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
        }).then(function (result) {
          if (!result.ok) { showMessage((result.answer.error && result.answer.error.message) || "The job could not be run.", "error"); return; }
          var holder = document.createElement("tbody");
          holder.innerHTML = result.answer.html.trim();
          var row = holder.firstElementChild;
          row.classList.add("changed");
          body.insertBefore(row, body.firstChild);
          var none = $("#no-runs");
          if (none) { none.remove(); }
          var run = row.getAttribute("data-tracker");
          var job = $("td[data-label=Job] a", row);
          showMessage("Run " + run + (job ? " of " + job.textContent : "") + " is queued: its status is in the first row of the runs below.", "success");
          schedulePoll();
        }).catch(function () {
          showMessage("The run could not be queued; reload and try again.", "error");
        }).then(function () { busy(button, false); });
      });
    });
  }

  /* ---- A refused form: to its first wrong field -------------------------------------- */
  function focusFirstError() {
    var wrong = $("form [aria-invalid=true]");
    if (!wrong) { return; }
    if (wrong.tagName === "FIELDSET") { wrong = $("[aria-invalid=true], input:not([type=hidden])", wrong) || wrong; }
    focusOn(wrong);
  }

  /* ---- The sticky Save/Run bar ------------------------------------------------------ */
  function setupStickyBar() {
    var bar = $(".sticky-actions");
    if (!bar) { return; }
    // The browser scrolls a focused textarea only as far as its caret, and the editor only
    // as far as its tiny input, and a bar that wraps is taller than the page's scroll
    // padding: after the browser's scroll, lift the whole box clear of the bar (if it fits).
    document.addEventListener("focusin", function (event) {
      var box = event.target.closest(".CodeMirror") || event.target;
      if (bar.contains(box)) { return; }
      window.requestAnimationFrame(function () {
        var rect = box.getBoundingClientRect();
        var top = bar.getBoundingClientRect().top;
        if (rect.bottom > top && rect.top - (rect.bottom - top) >= 0) {
          window.scrollBy(0, rect.bottom - top + 8);
        }
      });
    });
  }

  /* ---- Small things ----------------------------------------------------------------- */
  function setupCopy() {
    $all("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var input = document.getElementById(button.getAttribute("data-copy"));
        input.select();
        if (navigator.clipboard) {
          navigator.clipboard.writeText(input.value).then(function () { button.textContent = "Copied"; });
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupEditor();
    var jobForm = $("#job-form");
    if (jobForm) {
      setupBlocks(jobForm);
      setupPreview(jobForm);
      markError($("#preview-slot"));
    }
    setupStickyBar();
    focusFirstError();
    setupConnectionTest();
    setupRunForms();
    setupCopy();
    schedulePoll();
  });
})();
