// The console's only script: confirmations, the players, the live list's
// refresh. No inline script anywhere (the CSP forbids it).
"use strict";

document.querySelectorAll("form[data-confirm]").forEach(function (f) {
  f.addEventListener("submit", function (e) {
    if (!window.confirm(f.dataset.confirm)) e.preventDefault();
  });
});

// The live sessions table reloads itself while nothing is being typed.
var live = document.getElementById("live");
if (live && live.dataset.refresh) {
  window.setInterval(function () {
    var a = document.activeElement;
    if (a && (a.tagName === "INPUT" || a.tagName === "SELECT")) return;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live");
        if (fresh) {
          live.querySelector("tbody").replaceWith(fresh.querySelector("tbody"));
          live.querySelectorAll("form[data-confirm]").forEach(function (f) {
            f.addEventListener("submit", function (e) {
              if (!window.confirm(f.dataset.confirm)) e.preventDefault();
            });
          });
        }
      })
      .catch(function () {});
  }, Number(live.dataset.refresh) * 1000);
}

var el = document.getElementById("player");
if (el && window.AsciinemaPlayer) {
  var isLive = el.dataset.live === "true";
  var controls = document.getElementById("controls");
  var create = function (startAt) {
    el.replaceChildren();
    if (isLive) {
      window.sluicePlayer = AsciinemaPlayer.create({ driver: "eventsource", url: el.dataset.src }, el, { autoPlay: true, fit: "width" });
      return;
    }
    var opts = { fit: "width", speed: Number(controls.speed.value), autoPlay: true };
    var idle = Number(controls.idle.value);
    if (idle > 0) opts.idleTimeLimit = idle;
    if (startAt > 0) opts.startAt = startAt;
    window.sluicePlayer = AsciinemaPlayer.create(el.dataset.src, el, opts);
  };
  create(0);
  if (controls) {
    controls.speed.addEventListener("change", function () {
      // The player's getters return promises.
      Promise.resolve(window.sluicePlayer.getCurrentTime()).then(function (t) { create(t || 0); });
    });
    controls.idle.addEventListener("change", function () { create(0); });
    document.getElementById("seek-go").addEventListener("click", function () {
      window.sluicePlayer.seek(Number(controls.seek.value));
    });
  }
}
