// Autolog console: the one small script. Every page works without it; it only adds the
// viewer's own local time beside times shown in a site's zone.
(function () {
  "use strict";
  function viewerTimes(root) {
    var zone;
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    } catch (e) {
      return;
    }
    // A viewer in UTC already reads every time's UTC.
    if (zone === "UTC" || zone === "Etc/UTC") return;
    var times = root.querySelectorAll("time[data-viewer]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      if (t.querySelector(".viewer")) continue;
      var at = new Date(t.getAttribute("datetime"));
      if (isNaN(at.getTime())) continue;
      var text = at.toLocaleString(undefined, {
        year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", timeZone: zone, timeZoneName: "short"
      });
      var span = document.createElement("span");
      span.className = "viewer quiet";
      span.textContent = " (yours: " + text + ")";
      t.appendChild(span);
    }
  }
  document.addEventListener("DOMContentLoaded", function () { viewerTimes(document); });
  document.addEventListener("htmx:afterSwap", function (e) { viewerTimes(e.target); });
})();
