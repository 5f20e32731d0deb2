// Light progressive enhancement only: the pages work without it.
(function () {
  // Confirm destructive buttons.
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute("data-confirm");
    if (msg && !confirm(msg)) e.preventDefault();
  });
  // Pages marked data-live refresh their main part in place (skipped while the visitor types in
  // a form or has text selected).
  var main = document.querySelector("main[data-live]");
  if (!main) return;
  var every = (parseInt(main.getAttribute("data-live"), 10) || 5) * 1000;
  function busy() {
    var a = document.activeElement;
    if (a && main.contains(a) && /INPUT|TEXTAREA|SELECT/.test(a.tagName)) return true;
    var s = window.getSelection && window.getSelection();
    return s && String(s).length > 0;
  }
  setInterval(function () {
    if (document.hidden || busy()) return;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (t) {
        if (!t) return;
        var doc = new DOMParser().parseFromString(t, "text/html");
        var fresh = doc.querySelector("main");
        if (fresh && !busy()) main.innerHTML = fresh.innerHTML;
      })
      .catch(function () {});
  }, every);
})();
