// scf-console: small enhancements. Every page works without this file.
(function () {
  "use strict";

  // Region and namespace selectors switch as soon as a choice is made.
  document.addEventListener("change", function (e) {
    var form = e.target.closest && e.target.closest("form[data-autosubmit]");
    if (form && e.target.tagName === "SELECT") form.submit();
  });

  // Filter forms leave their empty fields out of the address (the server drops them too,
  // with a redirect, when this file is not there).
  document.addEventListener("submit", function (e) {
    var form = e.target.closest && e.target.closest("form[data-strip-empty]");
    if (!form || e.defaultPrevented) return;
    var left = [];
    form.querySelectorAll("input[name], select[name]").forEach(function (el) {
      if (el.value === "" || el.value === el.dataset.default) { el.disabled = true; left.push(el); }
    });
    // The browser has read the form by now; the fields come back at once, so a navigation
    // that is stopped or slow leaves nothing disabled.
    setTimeout(function () { left.forEach(function (el) { el.disabled = false; }); }, 0);
  });
  // Back to a page kept in memory: its fields are usable again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-strip-empty] [disabled]").forEach(function (el) { el.disabled = false; });
  });

  // Forms that cannot be undone ask first (users: their keys go with them).
  document.addEventListener("submit", function (e) {
    var form = e.target.closest && e.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
  });

  // "Add variable" adds a row in place instead of reloading the form.
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-add-env]");
    if (!button) return;
    var rows = button.closest("fieldset").querySelector("[data-env-rows]");
    var last = rows && rows.lastElementChild;
    if (!last) return;
    e.preventDefault();
    var index = rows.children.length;
    var row = last.cloneNode(true);
    row.querySelectorAll("input, label").forEach(function (el) {
      ["id", "for", "name"].forEach(function (attr) {
        var v = el.getAttribute(attr);
        if (v) el.setAttribute(attr, v.replace(/\d+/, String(index)));
      });
      if (el.tagName === "INPUT") el.value = "";
      if (el.tagName === "LABEL") el.textContent = el.textContent.replace(/\d+/, String(index + 1));
    });
    rows.appendChild(row);
    if (window.htmx) window.htmx.process(row);
    row.querySelector("input").focus();
  });

  // An empty function's code follows the runtime picked, as long as the user has not edited it.
  document.addEventListener("focusin", function (e) {
    if (e.target.id === "Runtime") e.target.dataset.previous = e.target.value;
  });
  document.addEventListener("change", function (e) {
    var select = e.target;
    if (select.id === "Runtime") {
      var code = document.getElementById(select.dataset.skeletonTarget || "Code");
      var previous = select.querySelector('option[value="' + (select.dataset.previous || "") + '"]');
      var next = select.options[select.selectedIndex];
      if (code && next && (!code.value.trim() || (previous && code.value === previous.dataset.skeleton))) {
        if (code.scfEditorView) window.scfEditor.setValue(code, next.dataset.skeleton);
        else code.value = next.dataset.skeleton;
      }
      if (code && code.scfEditorView) window.scfEditor.setLanguage(code, select.value);
      select.dataset.previous = select.value;
    }
    // Status trace needs async execution: unticking async unticks trace.
    if (select.id === "AsyncRunEnable" && !select.checked) {
      var trace = document.getElementById("TraceEnable");
      if (trace) trace.checked = false;
    }
  });

  // Picking a sample event puts it in the editor.
  document.addEventListener("change", function (e) {
    var select = e.target;
    if (select.id !== "Sample") return;
    var editor = document.getElementById(select.dataset.sampleTarget || "ClientContext");
    var option = select.options[select.selectedIndex];
    if (editor && option) editor.value = option.dataset.json;
  });

  // Event Management: live refresh that pauses while the tab is hidden, while the user is
  // selecting text, or when asked to; interval chosen in the page.
  var paused = false;
  function live() {
    if (paused || document.visibilityState !== "visible") return false;
    // Rows ticked for a bulk re-run stay as they are until the user acts on them.
    if (document.querySelector("[data-select]:checked")) return false;
    var sel = window.getSelection && window.getSelection();
    return !(sel && String(sel).length > 0);
  }
  // A poll that should not refresh now is cancelled; the next one asks again.
  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail && e.detail.elt;
    if (elt && elt.hasAttribute("data-refresh-target") && !live()) e.preventDefault();
  });
  function liveState() {
    var state = document.querySelector("[data-live-state]");
    if (state) state.textContent = paused ? "paused" : "";
  }
  document.addEventListener("click", function (e) {
    var pause = e.target.closest && e.target.closest("[data-pause]");
    if (pause) {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      liveState();
    }
    var copy = e.target.closest && e.target.closest("[data-copy]");
    if (copy && navigator.clipboard) {
      navigator.clipboard.writeText(copy.dataset.copy).then(function () {
        copy.classList.add("copied");
        setTimeout(function () { copy.classList.remove("copied"); }, 1200);
      });
    }
    var toggle = e.target.closest && e.target.closest("[data-time-toggle]");
    if (toggle) {
      localStorage.setItem("scf-times", localStorage.getItem("scf-times") === "local" ? "utc" : "local");
      showTimes();
    }
  });
  document.addEventListener("change", function (e) {
    var select = e.target.closest && e.target.closest("[data-refresh-select]");
    if (!select) return;
    var seconds = Number(select.value);
    document.querySelectorAll("[data-refresh-target]").forEach(function (el) {
      if (!el.getAttribute("hx-get")) {
        var url = (el.id === "event-stats" ? location.pathname + "/-/stats" : location.pathname + "/-/rows") + location.search;
        el.setAttribute("hx-get", url);
        el.setAttribute("hx-swap", "outerHTML");
      }
      var target = new URL(el.getAttribute("hx-get"), location.href);
      target.searchParams.set("refresh", String(seconds));
      el.setAttribute("hx-get", target.pathname + target.search);
      if (seconds > 0) {
        el.setAttribute("hx-trigger", "every " + seconds + "s");
      } else {
        el.removeAttribute("hx-trigger");
      }
      if (window.htmx) window.htmx.process(el);
    });
    var url = new URL(location.href);
    url.searchParams.set("refresh", String(seconds));
    history.replaceState(null, "", url);
  });

  // Times: UTC (as the server writes them) or the browser's zone, remembered. Every time the
  // console shows carries its instant (`datetime` or `data-at`) and how it is written
  // (`data-time`: a full time with its zone, "short" without the zone where the zone is said
  // nearby, "clock" for the time of day); zone labels (`data-zone`) follow.
  function pad(n) { return String(n).padStart(2, "0"); }
  function localText(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function zoneLabel(d) {
    var offset = -d.getTimezoneOffset();
    var sign = offset < 0 ? "-" : "+";
    offset = Math.abs(offset);
    return "UTC" + sign + pad(Math.floor(offset / 60)) + ":" + pad(offset % 60);
  }
  function showTimes() {
    var local = localStorage.getItem("scf-times") === "local";
    document.querySelectorAll("[data-time-toggle]").forEach(function (b) {
      b.textContent = local ? "Times: local (" + zoneLabel(new Date()) + ")" : "Times: UTC";
      b.setAttribute("aria-pressed", String(local));
    });
    document.querySelectorAll("[data-time]").forEach(function (t) {
      if (t.dataset.utc === undefined) t.dataset.utc = t.textContent;
      if (!local) { t.textContent = t.dataset.utc; return; }
      var d = new Date(t.getAttribute("datetime") || t.dataset.at);
      if (isNaN(d)) return;
      var kind = t.dataset.time;
      var text = kind === "clock" ? localText(d).slice(11) :
        kind === "short" ? localText(d) : localText(d) + " " + zoneLabel(d);
      t.textContent = text + (t.dataset.after || "");
    });
    document.querySelectorAll("time[data-relative]").forEach(function (t) {
      if (t.dataset.utcTitle === undefined) t.dataset.utcTitle = t.title;
      var d = new Date(t.getAttribute("datetime"));
      t.title = local && !isNaN(d) ? localText(d) + " " + zoneLabel(d) : t.dataset.utcTitle;
    });
    document.querySelectorAll("[data-zone]").forEach(function (z) {
      z.textContent = local ? zoneLabel(new Date()) : "UTC";
    });
  }
  document.addEventListener("DOMContentLoaded", showTimes);

  // Code editors: CodeMirror where the page loads it (the Code tab, the wizard); the plain
  // textarea stays without scripts, and it is what the form sends either way.
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.scfEditor) return;
    document.querySelectorAll("textarea[data-code-language]").forEach(function (t) {
      window.scfEditor.attach(t, t.dataset.codeLanguage);
    });
  });

  // Controls that need this file (pause, live refresh, the time toggle) are hidden without it.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
  });
  document.addEventListener("htmx:afterSwap", showTimes);
  document.addEventListener("visibilitychange", liveState);

  // A failed background request says so instead of failing silently.
  document.addEventListener("htmx:responseError", function (e) {
    var status = e.detail.xhr ? e.detail.xhr.status : "";
    showProblem("The console could not refresh this part of the page (HTTP " + status + "). Reload to try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    showProblem("The console cannot be reached. Check that scf-console is running, then reload.");
  });

  function showProblem(text) {
    var main = document.getElementById("main");
    if (!main) return;
    var box = document.getElementById("request-problem");
    if (!box) {
      box = document.createElement("div");
      box.id = "request-problem";
      box.className = "banner banner-error";
      box.setAttribute("role", "alert");
      main.insertBefore(box, main.firstChild);
    }
    box.textContent = text;
  }
})();
