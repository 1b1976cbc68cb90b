// StreamSpace portal: live regions and ticking clocks. Pages work without it (plain forms);
// with it, parts marked data-live-src are re-fetched whenever the session stream announces a change.
(function () {
  "use strict";
  var HEADERS = { "X-Requested-With": "streamspace-portal" };

  function human(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    var m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + two(m) + "m";
    if (m) return m + "m " + two(s) + "s";
    return s + "s";
  }

  // Clocks: data-elapsed counts up, data-countdown counts down, from when the part was rendered.
  function stamp(root) {
    root.querySelectorAll("[data-elapsed],[data-countdown]").forEach(function (el) { el._t0 = Date.now(); });
  }
  function tick() {
    document.querySelectorAll("[data-elapsed]").forEach(function (el) {
      el.textContent = human(Number(el.dataset.elapsed) + (Date.now() - (el._t0 || Date.now())) / 1000);
    });
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      el.textContent = human(Number(el.dataset.countdown) - (Date.now() - (el._t0 || Date.now())) / 1000);
    });
  }

  // Replace a live region's content, keeping keyboard focus on the same control when it is still there.
  function swap(region, html) {
    var focused = document.activeElement, focusId = focused && region.contains(focused) ? focused.id : null;
    region.innerHTML = html;
    stamp(region);
    tick();
    if (focusId) {
      var again = document.getElementById(focusId);
      if (again) again.focus();
    }
  }

  // A navigation underway (a form sent, such as "Log out", or a link followed) decides where this
  // page goes: a live part answering 401 meanwhile (the logout just ended the login) must not send it
  // to the login page first and cancel that navigation.
  var leaving = false;
  window.addEventListener("beforeunload", function () { leaving = true; });
  window.addEventListener("pageshow", function () { leaving = false; });  // back from the page cache

  function refresh(regions) {
    regions.forEach(function (region) {
      fetch(region.dataset.liveSrc, { headers: HEADERS, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) {  // the login ended: log in again and come back here
            if (!leaving) window.location.assign(response.headers.get("X-Login") || "/login");
            return null;
          }
          if (!response.ok) return null;
          var version = response.headers.get("X-Live-Version");
          if (version && version === region.dataset.liveVersion) return null;  // nothing changed
          return response.text().then(function (html) { return { html: html, version: version }; });
        })
        .then(function (fresh) {
          if (fresh === null) return;
          region.dataset.liveVersion = fresh.version || "";
          swap(region, fresh.html);
        })
        .catch(function () { /* the next event tries again */ });
    });
  }

  function listen(regions) {
    var source = new EventSource("/events");
    var onChange = function () { refresh(regions); };
    ["message", "sessions_update", "session"].forEach(function (name) { source.addEventListener(name, onChange); });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {  // refused (e.g. logged out): check, then retry
        refresh(regions);
        setTimeout(function () { listen(regions); }, 5000);
      }
    });
    document.body.dataset.live = "connected";
  }

  document.addEventListener("DOMContentLoaded", function () {
    stamp(document);
    setInterval(tick, 1000);
    var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live-src]"));
    if (regions.length && window.EventSource) listen(regions);
  });
})();
