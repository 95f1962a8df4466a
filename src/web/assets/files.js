"use strict";
/* Coffer's file page: the transfer queue (files, folders, drag and drop;
   resumable chunked uploads for large files), selection (zip download,
   move, delete), sorting, filtering and previews (app.js shows local
   times). Plain script, no inline code (the CSP forbids it). */
(function () {
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }
  function $(id) { return document.getElementById(id); }

  /* One API request; resolves {status, body} (body parsed when JSON),
     rejects only when the connection failed. */
  function api(method, url, body, onProgress, track) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      if (body instanceof Blob) {
        xhr.setRequestHeader("Content-Type", "application/octet-stream");
      } else if (body !== undefined && body !== null) {
        xhr.setRequestHeader("Content-Type", "application/json");
        body = JSON.stringify(body);
      }
      if (onProgress) {
        xhr.upload.addEventListener("progress", function (ev) { onProgress(ev.loaded); });
      }
      xhr.addEventListener("load", function () {
        var answer = {};
        try { answer = JSON.parse(xhr.responseText) || {}; } catch (e) { /* not JSON */ }
        resolve({ status: xhr.status, body: answer });
      });
      xhr.addEventListener("error", function () { reject(new Error("the connection failed")); });
      xhr.addEventListener("abort", function () { reject(new Error("cancelled")); });
      if (track) track(xhr);
      xhr.send(body === undefined ? null : body);
    });
  }

  function joinPath(dir, rel) { return (dir === "/" ? "" : dir) + "/" + rel; }
  function fmtBytes(n) {
    var units = ["B", "KB", "MB", "GB", "TB"];
    var i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  /* ---- The transfer queue ---- */
  var form = $("upload-form");
  var status = $("upload-status");
  if (form && status) {
    var dir = form.getAttribute("data-dir") || "/";
    var chunk = parseInt(form.getAttribute("data-chunk"), 10) || 8 * 1024 * 1024;
    var label = $("upload-label");
    var bar = $("upload-progress");
    var list = $("upload-queue");
    var errors = $("upload-errors");
    var queue = [];
    var running = false;

    var summary = function () {
      var done = 0, failed = 0, cancelled = 0, total = 0, sent = 0;
      queue.forEach(function (it) {
        total += it.file.size || 0;
        sent += it.state === "done" ? (it.file.size || 0) : it.sent;
        if (it.state === "done") done += 1;
        if (it.state === "failed") failed += 1;
        if (it.state === "cancelled") cancelled += 1;
      });
      var pct = total ? Math.floor(sent * 100 / total) : (done === queue.length ? 100 : 0);
      bar.value = pct;
      bar.textContent = pct + "%";
      var finished = done + failed + cancelled === queue.length;
      status.classList.toggle("failed", finished && failed > 0);
      if (!finished) {
        label.removeAttribute("role");
        label.textContent = "Uploading " + (done + failed + cancelled + 1) + " of " + queue.length + "…";
        return;
      }
      if (failed === 0 && cancelled === 0) {
        label.textContent = "Done.";
        window.location.reload();
        return;
      }
      label.textContent = done + " of " + queue.length + " uploaded" +
        (failed ? "; " + failed + " failed:" : "") + (cancelled ? "; " + cancelled + " cancelled" : "");
      if (failed) label.setAttribute("role", "alert");
      errors.textContent = "";
      queue.forEach(function (it) {
        if (it.state !== "failed") return;
        var li = document.createElement("li");
        li.textContent = it.error;
        errors.appendChild(li);
      });
      errors.hidden = failed === 0;
      $("upload-done").hidden = false;
    };

    var show = function (it) {
      it.bar.value = it.file.size ? Math.floor(it.sent * 100 / it.file.size) : (it.state === "done" ? 100 : 0);
      it.row.className = "transfer " + it.state;
      it.cancel.hidden = !(it.state === "waiting" || it.state === "sending" || it.state === "retrying");
      it.retry.hidden = !(it.state === "failed" || it.state === "cancelled");
      var text = {
        waiting: "Waiting",
        sending: fmtBytes(it.sent) + " of " + fmtBytes(it.file.size),
        retrying: "Connection lost; resuming at " + fmtBytes(it.sent) + "…",
        done: "Uploaded",
        cancelled: "Cancelled",
        failed: it.error || "Failed"
      }[it.state];
      it.note.textContent = text;
      summary();
    };

    var add = function (file, rel) {
      var it = { file: file, rel: rel, state: "waiting", sent: 0, upload: null, xhr: null, error: "" };
      var row = document.createElement("li");
      var name = document.createElement("span");
      name.className = "transfer-name";
      name.textContent = rel;
      var p = document.createElement("progress");
      p.max = 100;
      p.value = 0;
      p.setAttribute("aria-label", "Progress of " + rel);
      var note = document.createElement("span");
      note.className = "transfer-note";
      var cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "small";
      cancel.textContent = "Cancel";
      cancel.setAttribute("aria-label", "Cancel " + rel);
      var retry = document.createElement("button");
      retry.type = "button";
      retry.className = "small";
      retry.textContent = "Retry";
      retry.setAttribute("aria-label", "Retry " + rel);
      row.append(name, p, note, cancel, retry);
      list.appendChild(row);
      it.row = row; it.bar = p; it.note = note; it.cancel = cancel; it.retry = retry;
      cancel.addEventListener("click", function () { stop(it); });
      retry.addEventListener("click", function () {
        it.state = "waiting";
        it.error = "";
        show(it);
        pump();
      });
      queue.push(it);
      show(it);
    };

    var stop = function (it) {
      var was = it.state;
      it.state = "cancelled";
      if (it.xhr) it.xhr.abort();
      if (it.upload) {
        api("DELETE", "/api/v1/files/uploads/" + it.upload).catch(function () {});
        it.upload = null;
        it.sent = 0;
      }
      show(it);
      if (was === "waiting") pump();
    };

    var fail = function (it, message) {
      it.state = "failed";
      it.error = it.rel + ": " + message;
      show(it);
    };

    var path = function (it) { return joinPath(dir, it.rel); };

    /* A small file: one PUT, the body streamed to disk. */
    var sendWhole = function (it, overwrite) {
      var url = "/api/v1/files/content?parents=true&path=" + encodeURIComponent(path(it)) +
        (overwrite ? "&overwrite=true" : "");
      return api("PUT", url, it.file, function (n) { it.sent = n; show(it); },
        function (x) { it.xhr = x; }).then(function (r) {
        it.xhr = null;
        return r;
      });
    };

    var wait = function (ms) { return new Promise(function (res) { setTimeout(res, ms); }); };

    /* A large file: an upload session, then chunks at the offset the
       server holds; a lost connection waits and resumes from there. */
    var sendChunks = function (it, overwrite) {
      var create = function () {
        return api("POST", "/api/v1/files/uploads",
          { path: path(it), size: it.file.size, overwrite: !!overwrite, parents: true });
      };
      var start = it.upload ? Promise.resolve({ status: 200, body: { offset: it.sent } }) : create();
      var tries = 0;
      var step = function (r) {
        if (it.state === "cancelled") return { status: 0, body: {} };
        if (r.status === 201 && r.body && r.body.id && !it.upload) {
          it.upload = r.body.id;
          it.sent = r.body.offset || 0;
        } else if (r.status === 201) {
          it.upload = null;
          return r; /* complete */
        } else if (r.status === 409 && r.body.error === "wrong_offset") {
          it.sent = r.body.offset;
        } else if (r.status === 200) {
          it.sent = r.body.offset;
          tries = 0;
        } else {
          return r;
        }
        it.state = "sending";
        show(it);
        var from = it.sent;
        var piece = it.file.slice(from, Math.min(from + chunk, it.file.size));
        return api("PATCH", "/api/v1/files/uploads/" + it.upload + "?offset=" + from, piece,
          function (n) { it.sent = from + n; show(it); }, function (x) { it.xhr = x; })
          .then(step, lost);
      };
      var lost = function (err) {
        it.xhr = null;
        if (it.state === "cancelled") throw err;
        tries += 1;
        if (tries > 8) throw err;
        it.state = "retrying";
        show(it);
        return wait(Math.min(30000, 500 * Math.pow(2, tries - 1))).then(function () {
          if (it.state === "cancelled") throw new Error("cancelled");
          if (!it.upload) return create().then(step, lost);
          return api("GET", "/api/v1/files/uploads/" + it.upload).then(function (r) {
            if (r.status === 404) {
              it.upload = null;
              return { status: 404, body: { message: "the upload ended on the server; retry to start again" } };
            }
            return step(r);
          }, lost);
        });
      };
      return start.then(step, lost);
    };

    var run = function (it, overwrite) {
      it.state = "sending";
      show(it);
      var big = it.file.size > chunk;
      return (big ? sendChunks(it, overwrite) : sendWhole(it, overwrite)).then(function (r) {
        if (it.state === "cancelled") return;
        if (r.status >= 200 && r.status < 300) {
          it.state = "done";
          it.sent = it.file.size;
          show(it);
          return;
        }
        if (r.status === 409 && r.body.error === "exists" && !overwrite &&
            window.confirm(it.rel + " exists. Replace it?")) {
          return run(it, true);
        }
        if (it.upload) {
          /* Refused by the server (not a lost connection): the session goes. */
          api("DELETE", "/api/v1/files/uploads/" + it.upload).catch(function () {});
          it.upload = null;
          it.sent = 0;
        }
        var message = r.body.message || ("the upload failed (HTTP " + r.status + ")");
        if (r.status === 409 && r.body.error === "exists") message = "not replaced (it exists)";
        fail(it, message);
      }, function (err) {
        if (it.state === "cancelled") return;
        fail(it, err.message);
      });
    };

    /* One transfer at a time; every item is tried, failures are listed. */
    var pump = function () {
      if (running) return;
      var it = queue.filter(function (q) { return q.state === "waiting"; })[0];
      if (!it) { summary(); return; }
      running = true;
      status.hidden = false;
      $("upload-done").hidden = true;
      run(it, false).then(function () { running = false; pump(); });
    };

    var enqueue = function (entries) {
      if (!entries.length) return;
      status.hidden = false;
      errors.hidden = true;
      entries.forEach(function (e) { add(e.file, e.rel); });
      pump();
    };

    var picked = function (input) {
      input.addEventListener("change", function () {
        var files = Array.prototype.slice.call(input.files || []);
        enqueue(files.map(function (f) { return { file: f, rel: f.webkitRelativePath || f.name }; }));
        input.value = "";
      });
    };
    if ($("upload-files")) picked($("upload-files"));
    if ($("upload-folder")) picked($("upload-folder"));

    /* Folders dropped: walked through the entries API; empty folders are
       made on the server too. */
    var walk = function (entry, prefix, out) {
      if (entry.isFile) {
        return new Promise(function (res) {
          entry.file(function (f) { out.push({ file: f, rel: prefix + f.name }); res(); }, function () { res(); });
        });
      }
      if (!entry.isDirectory) return Promise.resolve();
      var reader = entry.createReader();
      var here = prefix + entry.name + "/";
      var kids = [];
      var more = function () {
        return new Promise(function (res) { reader.readEntries(res, function () { res([]); }); })
          .then(function (batch) {
            if (!batch.length) return;
            kids = kids.concat(batch);
            return more();
          });
      };
      return more().then(function () {
        if (!kids.length) {
          return api("POST", "/api/v1/files/mkdir", { path: joinPath(dir, here.slice(0, -1)), parents: true })
            .catch(function () {});
        }
        return Promise.all(kids.map(function (k) { return walk(k, here, out); }));
      });
    };

    var zone = $("drop-zone");
    if (zone) zone.hidden = false;
    var depth = 0;
    document.addEventListener("dragenter", function (ev) {
      if (!ev.dataTransfer || Array.prototype.indexOf.call(ev.dataTransfer.types, "Files") < 0) return;
      depth += 1;
      document.body.classList.add("dropping");
    });
    document.addEventListener("dragleave", function () {
      depth = Math.max(0, depth - 1);
      if (!depth) document.body.classList.remove("dropping");
    });
    document.addEventListener("dragover", function (ev) {
      if (ev.dataTransfer && Array.prototype.indexOf.call(ev.dataTransfer.types, "Files") >= 0) {
        ev.preventDefault();
        ev.dataTransfer.dropEffect = "copy";
      }
    });
    document.addEventListener("drop", function (ev) {
      var dt = ev.dataTransfer;
      if (!dt) return;
      ev.preventDefault();
      depth = 0;
      document.body.classList.remove("dropping");
      var out = [];
      var items = Array.prototype.slice.call(dt.items || []);
      var entries = items.map(function (i) { return i.webkitGetAsEntry ? i.webkitGetAsEntry() : null; });
      if (entries.length && entries.every(function (e) { return e; })) {
        Promise.all(entries.map(function (e) { return walk(e, "", out); })).then(function () { enqueue(out); });
      } else {
        enqueue(Array.prototype.map.call(dt.files || [], function (f) { return { file: f, rel: f.name }; }));
      }
    });
  }

  /* ---- Selection, sorting, filtering ---- */
  var table = $("file-table");
  if (table) {
    var tbody = table.tBodies[0];
    var here = table.getAttribute("data-dir") || "/";
    var rows = function () { return Array.prototype.slice.call(tbody.rows); };
    var ticked = function () {
      return rows().filter(function (r) { return !r.hidden && r.querySelector("input.pick").checked; });
    };
    var count = $("selected-count");
    var sync = function () {
      var n = ticked().length;
      count.textContent = n ? n + " selected" : "None selected";
      document.querySelectorAll("#selection button").forEach(function (b) { b.disabled = !n; });
      var all = $("select-all");
      var visible = rows().filter(function (r) { return !r.hidden; });
      all.checked = n > 0 && n === visible.length;
      all.indeterminate = n > 0 && n < visible.length;
    };
    tbody.addEventListener("change", sync);
    $("select-all").addEventListener("change", function (ev) {
      rows().forEach(function (r) { if (!r.hidden) r.querySelector("input.pick").checked = ev.target.checked; });
      sync();
    });
    /* Hidden rows are not part of the zip either. */
    $("zip-form").addEventListener("submit", function () {
      rows().forEach(function (r) { if (r.hidden) r.querySelector("input.pick").checked = false; });
    });

    var each = function (verb, work) {
      var chosen = ticked();
      var failures = [];
      var next = function (i) {
        if (i >= chosen.length) {
          if (failures.length) window.alert(verb + " failed for:\n" + failures.join("\n"));
          window.location.reload();
          return;
        }
        var name = chosen[i].getAttribute("data-name");
        work(name).then(function (r) {
          if (r.status >= 300) failures.push(name + ": " + (r.body.message || "HTTP " + r.status));
          next(i + 1);
        }, function (e) { failures.push(name + ": " + e.message); next(i + 1); });
      };
      next(0);
    };
    var del = $("delete-selected");
    if (del) del.addEventListener("click", function () {
      var n = ticked().length;
      if (!window.confirm("Delete " + n + (n === 1 ? " item" : " items") + " (folders with everything in them)?")) return;
      each("Deleting", function (name) {
        return api("DELETE", "/api/v1/files?recursive=true&path=" + encodeURIComponent(joinPath(here, name)));
      });
    });
    var move = $("move-selected");
    if (move) move.addEventListener("click", function () {
      var to = $("move-to").value.trim() || "/";
      if (to.charAt(0) !== "/") to = joinPath(here, to);
      each("Moving", function (name) {
        return api("POST", "/api/v1/files/rename", { from: joinPath(here, name), to: joinPath(to, name) });
      });
    });

    var filter = $("filter");
    filter.addEventListener("input", function () {
      var q = filter.value.trim().toLowerCase();
      var shown = 0;
      rows().forEach(function (r) {
        r.hidden = q !== "" && r.getAttribute("data-name").toLowerCase().indexOf(q) < 0;
        if (!r.hidden) shown += 1;
      });
      $("filter-empty").hidden = shown > 0;
      sync();
    });

    table.querySelectorAll("button.sort").forEach(function (b) {
      b.addEventListener("click", function () {
        var key = b.getAttribute("data-sort");
        var th = b.parentNode;
        var asc = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var sorted = rows().sort(function (x, y) {
          var dx = x.getAttribute("data-kind") === "directory", dy = y.getAttribute("data-kind") === "directory";
          if (dx !== dy) return dx ? -1 : 1; /* folders stay first */
          var a, c;
          if (key === "name") {
            a = x.getAttribute("data-name"); c = y.getAttribute("data-name");
            var o = a.localeCompare(c, undefined, { numeric: true, sensitivity: "base" });
            return asc ? o : -o;
          }
          a = Number(x.getAttribute("data-" + key)); c = Number(y.getAttribute("data-" + key));
          return asc ? a - c : c - a;
        });
        sorted.forEach(function (r) { tbody.appendChild(r); });
      });
    });
    sync();
  }

  /* ---- Preview: images as <img>, text as textContent (never markup) ---- */
  var dialog = $("preview");
  if (dialog) {
    var body = $("preview-body");
    $("preview-close").addEventListener("click", function () { dialog.close(); });
    document.querySelectorAll("[data-preview]").forEach(function (b) {
      b.addEventListener("click", function () {
        var p = b.getAttribute("data-preview");
        var url = "/files/preview?path=" + encodeURIComponent(p);
        $("preview-h").textContent = p.split("/").pop();
        $("preview-download").href = "/files/download?path=" + encodeURIComponent(p);
        body.textContent = "";
        if (b.getAttribute("data-preview-kind") === "image") {
          var img = document.createElement("img");
          img.alt = p.split("/").pop();
          img.src = url;
          body.appendChild(img);
        } else {
          var pre = document.createElement("pre");
          pre.textContent = "Loading…";
          body.appendChild(pre);
          fetch(url, { credentials: "same-origin" }).then(function (r) {
            var whole = r.headers.get("x-coffer-truncated");
            return r.text().then(function (t) {
              pre.textContent = r.ok ? t : "This file cannot be previewed (HTTP " + r.status + ").";
              if (r.ok && whole) {
                var note = document.createElement("p");
                note.className = "help";
                note.textContent = "The first " + fmtBytes(t.length) + " of " + fmtBytes(Number(whole)) + " are shown; download the file for the rest.";
                body.appendChild(note);
              }
            });
          });
        }
        dialog.showModal();
      });
    });
  }
})();
