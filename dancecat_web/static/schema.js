/* The job form's schema browser, autocomplete and Format SQL.

   The chosen connection's catalogue comes from /api/v1/connections/{id}/schema (cached on
   the server; Refresh reads it again). Only tables arrive at first; a table's columns are
   fetched when its tree item opens or when the query names it and autocomplete runs, so a
   catalogue of 10,000 tables costs one request and at most MAX_SHOWN tree items per
   schema (the filter narrows the rest).

   The tree follows the WAI-ARIA tree pattern: one item in the tab order, arrow keys move,
   Right/Left open and close, Enter puts the name in the query. Autocomplete is
   CodeMirror's show-hint and sql-hint (vendored), fed with the catalogue's names and the
   dialect's keywords: Ctrl-Space, or a "." after a name. */
(function () {
  "use strict";

  var MAX_SHOWN = 200;          // tree items per schema before "type to narrow"
  var MAX_COLUMN_FETCHES = 8;   // tables whose columns one completion may fetch
  var MODES = { postgresql: "text/x-pgsql", mysql: "text/x-mariadb", sqlite: "text/x-sqlite" };

  var panel, tree, statusLine, filter, editor = null;
  var state = { connectionId: null, driver: "", tables: [], byName: {}, columns: {}, hintTables: null };

  function $(selector, root) { return (root || document).querySelector(selector); }
  function key(table) { return table.schema + "\u0000" + table.name; }
  function shownName(table) { return table.searchable ? table.name : table.schema + "." + table.name; }

  function csrfToken() {
    var input = $("#job-form input[name=csrf_token]");
    return input ? input.value : "";
  }

  function api(url, method, body) {
    var options = { method: method || "GET", credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (options.method !== "GET") {
      options.headers["X-CSRF-Token"] = csrfToken();
      if (body) {
        options.headers["Content-Type"] = "application/json";
        options.body = JSON.stringify(body);
      }
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          throw new Error(data.error && data.error.message ? data.error.message : "the server answered " + response.status);
        }
        return data;
      });
    });
  }

  function schemaUrl(id) {
    return panel.getAttribute("data-schema-url").replace(/\/0\/schema$/, "/" + encodeURIComponent(id) + "/schema");
  }

  function setStatus(text, failed) {
    statusLine.textContent = text;
    statusLine.classList.toggle("schema-failed", !!failed);
  }

  /* ---- Reading the catalogue ------------------------------------------------------- */
  function chosenConnection() {
    var select = document.getElementById("connection_id");
    return select && select.value ? select.value : null;
  }

  function load(again) {
    var id = chosenConnection();
    // A "change" that picks the connection already shown reads nothing again; a different
    // one empties the tree at once so the old connection's tables never stand under the new name.
    if (!again && id && id === state.connectionId) { return; }
    if (id !== state.connectionId) { accept({ tables: [], driver: "" }); }
    state.connectionId = id;
    if (!id) { panel.hidden = true; return; }
    panel.hidden = false;
    setStatus(again ? "Reading the catalogue again…" : "Reading the catalogue…");
    var request = again ? api(schemaUrl(id) + "/refresh", "POST") : api(schemaUrl(id));
    request.then(function (data) {
      if (state.connectionId === id) { accept(data.schema); }
    }).catch(function (error) {
      if (state.connectionId !== id) { return; }
      accept({ tables: [], driver: "" });
      setStatus(error.message, true);
    });
  }

  function accept(schema) {
    state.tables = schema.tables;
    state.columns = {};
    state.byName = {};
    state.hintTables = null;
    state.driver = schema.driver;
    schema.tables.forEach(function (table) {
      if (table.columns) { state.columns[key(table)] = table.columns; }
      state.byName[(table.schema + "." + table.name).toUpperCase()] = table;
      if (table.searchable && !state.byName[table.name.toUpperCase()]) {
        state.byName[table.name.toUpperCase()] = table;
      }
    });
    if (editor && MODES[schema.driver]) { editor.setOption("mode", MODES[schema.driver]); }
    if (schema.read_at) {
      var count = schema.tables.length;
      var note = count + " table" + (count === 1 ? "" : "s") + " and views";
      if (schema.left_out) { note += " (" + schema.left_out + " more left out)"; }
      setStatus(note + ", read " + new Date(schema.read_at).toLocaleString());
    }
    render();
  }

  function loadColumns(table) {
    var id = state.connectionId;
    if (state.columns[key(table)]) { return Promise.resolve(state.columns[key(table)]); }
    var url = schemaUrl(id) + "/columns?schema=" + encodeURIComponent(table.schema) + "&table=" + encodeURIComponent(table.name);
    return api(url).then(function (data) {
      if (state.connectionId === id) {
        state.columns[key(table)] = data.columns;
        state.hintTables = null;
      }
      return data.columns;
    });
  }

  /* ---- The tree ---------------------------------------------------------------------- */
  function item(level, label, expandable) {
    var li = document.createElement("li");
    li.setAttribute("role", "treeitem");
    li.setAttribute("aria-level", String(level));
    li.tabIndex = -1;
    if (expandable) { li.setAttribute("aria-expanded", "false"); }
    var row = document.createElement("span");
    row.className = "schema-row";
    row.appendChild(label);
    li.appendChild(row);
    return li;
  }

  function text(tag, className, content) {
    var element = document.createElement(tag);
    if (className) { element.className = className; }
    element.textContent = content;
    return element;
  }

  function group(li) {
    var ul = document.createElement("ul");
    ul.setAttribute("role", "group");
    ul.hidden = true;
    li.appendChild(ul);
    return ul;
  }

  function render() {
    tree.textContent = "";
    var wanted = filter.value.trim().toUpperCase();
    var schemas = [];
    var bySchema = {};
    state.tables.forEach(function (table) {
      if (!bySchema[table.schema]) { bySchema[table.schema] = []; schemas.push(table.schema); }
      if (!wanted || table.name.toUpperCase().indexOf(wanted) >= 0) { bySchema[table.schema].push(table); }
    });
    schemas.forEach(function (name) {
      var tables = bySchema[name];
      var label = document.createElement("span");
      label.appendChild(text("span", "schema-name", name));
      label.appendChild(text("span", "schema-type", " (" + tables.length + (wanted ? " matching)" : ")")));
      var li = item(1, label, true);
      li.schemaTables = tables;
      tree.appendChild(li);
      if (schemas.length === 1 || wanted) { expand(li); }
    });
    if (!state.tables.length && state.connectionId) {
      tree.appendChild(text("li", "sub", "No tables this connection may read."));
    }
    var first = tree.querySelector("[role=treeitem]");
    if (first) { first.tabIndex = 0; }
  }

  function tableItem(table) {
    var label = document.createElement("span");
    label.appendChild(text("span", "schema-name", table.name));
    if (table.kind === "view") { label.appendChild(text("span", "schema-type", " view")); }
    var li = item(2, label, true);
    li.table = table;
    li.insertText = shownName(table);
    return li;
  }

  function columnItem(column) {
    var label = document.createElement("span");
    label.appendChild(text("span", "schema-name", column.name));
    label.appendChild(text("span", "schema-type", " " + column.type));
    if (column.scrubbed) {
      var badge = text("span", "schema-scrubbed", "removed from results");
      badge.title = column.scrubbed;
      label.appendChild(badge);
      label.appendChild(text("span", "sr-only", ": " + column.scrubbed));
    }
    var li = item(3, label, false);
    li.insertText = column.name;
    if (column.scrubbed) { li.classList.add("is-scrubbed"); }
    return li;
  }

  function fill(li) {
    var ul = $("ul[role=group]", li) || group(li);
    if (li.filled) { return Promise.resolve(ul); }
    li.filled = true;
    if (li.schemaTables) {
      li.schemaTables.slice(0, MAX_SHOWN).forEach(function (table) { ul.appendChild(tableItem(table)); });
      var more = li.schemaTables.length - MAX_SHOWN;
      if (more > 0) {
        var note = item(2, text("span", "sub", more + " more: type in the filter to narrow"), false);
        note.setAttribute("aria-disabled", "true");
        ul.appendChild(note);
      }
      return Promise.resolve(ul);
    }
    li.setAttribute("aria-busy", "true");
    return loadColumns(li.table).then(function (columns) {
      columns.forEach(function (column) { ul.appendChild(columnItem(column)); });
      if (!columns.length) { ul.appendChild(item(3, text("span", "sub", "no columns this connection may read"), false)); }
      return ul;
    }).catch(function (error) {
      li.filled = false;
      setStatus(error.message, true);
      return ul;
    }).then(function (ulDone) { li.removeAttribute("aria-busy"); return ulDone; });
  }

  function expand(li) {
    li.setAttribute("aria-expanded", "true");
    return fill(li).then(function (ul) { ul.hidden = li.getAttribute("aria-expanded") !== "true"; return ul; });
  }

  function collapse(li) {
    li.setAttribute("aria-expanded", "false");
    var ul = $("ul[role=group]", li);
    if (ul) { ul.hidden = true; }
  }

  function visibleItems() {
    return Array.prototype.filter.call(tree.querySelectorAll("[role=treeitem]"), function (li) {
      return li.offsetParent !== null;
    });
  }

  function focusItem(li) {
    if (!li) { return; }
    Array.prototype.forEach.call(tree.querySelectorAll("[role=treeitem][tabindex='0']"), function (other) { other.tabIndex = -1; });
    li.tabIndex = 0;
    li.focus();
  }

  /* The query editor: dancecat.js builds it on first use (it is not part of the page load). */
  function withEditor(then) {
    if (editor) { then(editor); return; }
    if (!window.DanceCat) { return; }
    window.DanceCat.editor().then(then).catch(function (error) { setStatus(error.message, true); });
  }

  function insert(li) {
    if (!li.insertText) { return; }
    withEditor(function (cm) {
      cm.replaceSelection(li.insertText);
      setStatus("Put " + li.insertText + " in the query.");
    });
  }

  function onKey(event) {
    var li = event.target.closest("[role=treeitem]");
    if (!li) { return; }
    var items = visibleItems();
    var at = items.indexOf(li);
    var expandable = li.hasAttribute("aria-expanded");
    var open = li.getAttribute("aria-expanded") === "true";
    var handled = true;
    switch (event.key) {
      case "ArrowDown": focusItem(items[at + 1]); break;
      case "ArrowUp": focusItem(items[at - 1]); break;
      case "Home": focusItem(items[0]); break;
      case "End": focusItem(items[items.length - 1]); break;
      case "ArrowRight":
        if (expandable && !open) { expand(li); } else if (open) { focusItem($("[role=treeitem]", li)); }
        break;
      case "ArrowLeft":
        if (open) { collapse(li); } else { focusItem(li.parentElement.closest("[role=treeitem]")); }
        break;
      case "Enter": insert(li); break;
      default: handled = false;
    }
    if (handled) { event.preventDefault(); }
  }

  function onClick(event) {
    var li = event.target.closest("[role=treeitem]");
    if (!li || li.getAttribute("aria-disabled") === "true") { return; }
    focusItem(li);
    if (!li.hasAttribute("aria-expanded")) { insert(li); return; }
    if (li.getAttribute("aria-expanded") === "true") { collapse(li); } else { expand(li); }
  }

  /* ---- Autocomplete ---------------------------------------------------------------- */
  function hintTables() {
    if (state.hintTables) { return state.hintTables; }
    var tables = {};
    state.tables.forEach(function (table) {
      var columns = (state.columns[key(table)] || []).map(function (column) { return column.name; });
      tables[table.schema + "." + table.name] = columns;
      if (table.searchable && !tables[table.name]) { tables[table.name] = columns; }
    });
    state.hintTables = tables;
    return tables;
  }

  /* The known tables a query names, in order of first mention (quotes ignored). */
  function namedTables(sql) {
    var found = [];
    var seen = {};
    (sql.replace(/["`[\]]/g, "").match(/[A-Za-z_][\w$]*(?:\.[A-Za-z_][\w$]*)?/g) || []).forEach(function (word) {
      var table = state.byName[word.toUpperCase()];
      if (table && !seen[key(table)]) { seen[key(table)] = true; found.push(table); }
    });
    return found;
  }

  function sqlHint(cm, callback) {
    var missing = namedTables(cm.getValue()).filter(function (table) { return !state.columns[key(table)]; });
    Promise.all(missing.slice(0, MAX_COLUMN_FETCHES).map(function (table) {
      return loadColumns(table).catch(function () { return []; });
    })).then(function () {
      var named = namedTables(cm.getValue());
      callback(window.CodeMirror.hint.sql(cm, {
        tables: hintTables(),
        defaultTable: named.length ? shownName(named[0]) : null
      }));
    });
  }
  sqlHint.async = true;

  function complete(cm) { cm.showHint({ hint: sqlHint, completeSingle: false }); }

  function setupCompletion(cm) {
    editor = cm;
    if (MODES[state.driver]) { cm.setOption("mode", MODES[state.driver]); }
    cm.addKeyMap({ "Ctrl-Space": complete });
    cm.on("inputRead", function (instance, change) {
      if (change.text.length === 1 && change.text[0] === "." && !instance.state.completionActive) { complete(instance); }
    });
    var tip = $(".editor-tools [data-script-only]");
    if (tip) { tip.hidden = false; }
  }

  /* ---- Format SQL ------------------------------------------------------------------ */
  function setupFormat() {
    var button = $("#format-sql");
    if (!button) { return; }
    button.addEventListener("click", function (event) {
      if (!editor && !window.DanceCat) { return; }  // no page script: the form posts and the server formats
      event.preventDefault();
      withEditor(function (cm) {
        var id = chosenConnection();
        api(panel.getAttribute("data-format-url"), "POST", {
          query: cm.getValue(),
          connection_id: id ? parseInt(id, 10) : null
        }).then(function (data) {
          cm.setValue(data.query);
          setStatus("Query formatted.");
        }).catch(function (error) { setStatus(error.message, true); });
      });
    });
  }

  document.addEventListener("dancecat:editor", function (event) { setupCompletion(event.detail); });
  document.addEventListener("DOMContentLoaded", function () {
    panel = $("#schema-browser");
    if (!panel) { return; }
    tree = $("#schema-tree");
    statusLine = $("#schema-status");
    filter = $("#schema-filter");
    tree.addEventListener("keydown", onKey);
    tree.addEventListener("click", onClick);
    filter.addEventListener("input", render);
    $("#schema-refresh").addEventListener("click", function () { load(true); });
    var select = document.getElementById("connection_id");
    if (select) { select.addEventListener("change", function () { load(false); }); }
    setupFormat();
    load(false);
  });
})();
