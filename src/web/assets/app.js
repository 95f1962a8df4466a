"use strict";
/* Coffer: the little script the pages use. No inline script anywhere (the
   Content-Security-Policy forbids it); everything hooks on data attributes. */
(function () {
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  /* Forms with data-confirm ask first. */
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      ev.preventDefault();
    }
  });

  /* A button with data-needs="ID" is enabled only while checkbox ID is ticked. */
  document.querySelectorAll("[data-needs]").forEach(function (button) {
    var box = document.getElementById(button.getAttribute("data-needs"));
    if (!box) return;
    var sync = function () { button.disabled = !box.checked; };
    box.addEventListener("change", sync);
    sync();
  });

  /* Recovery codes: download as a text file, made in the page. */
  var download = document.getElementById("download-codes");
  if (download) {
    download.addEventListener("click", function () {
      var list = document.getElementById("recovery-codes");
      var codes = Array.prototype.map.call(list.querySelectorAll("li"), function (li) {
        return li.textContent.trim();
      });
      var account = list.getAttribute("data-account") || "";
      var text = "Coffer recovery codes for " + account + " (" + location.host + ")\n" +
        "Each code signs you in once instead of an authentication code.\n\n" +
        codes.join("\n") + "\n";
      var url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
      var a = document.createElement("a");
      a.href = url;
      a.download = "coffer-recovery-codes.txt";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    });
  }

  /* Copy buttons: data-copy="ID of an input". */
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      input.select();
      if (navigator.clipboard) {
        navigator.clipboard.writeText(input.value).then(function () {
          button.textContent = "Copied";
        }, function () {});
      }
    });
  });

  /* File inputs with data-fill="ID" read a PEM file into a textarea. */
  document.querySelectorAll("input[type=file][data-fill]").forEach(function (input) {
    input.addEventListener("change", function () {
      var target = document.getElementById(input.getAttribute("data-fill"));
      var file = input.files && input.files[0];
      if (!file || !target) return;
      file.text().then(function (t) { target.value = t; });
    });
  });

  /* Times: the page carries UTC; show the browser's own zone, with seconds
     (the UTC text stays as the tooltip). */
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var at = new Date(el.getAttribute("datetime"));
    if (isNaN(at.getTime())) return;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    var zone = "";
    try {
      zone = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
        .formatToParts(at).filter(function (p) { return p.type === "timeZoneName"; })
        .map(function (p) { return p.value; }).join("");
    } catch (e) { zone = ""; }
    el.textContent = at.getFullYear() + "-" + two(at.getMonth() + 1) + "-" + two(at.getDate()) +
      " " + two(at.getHours()) + ":" + two(at.getMinutes()) + ":" + two(at.getSeconds()) +
      (zone ? " " + zone : "");
  });
})();
