// Keeps a page's live counters (#counters) current: every five seconds the page is fetched
// again and only that part is replaced, so nothing typed into the page's forms is lost.
(function () {
  "use strict";
  var counters = document.getElementById("counters");
  if (!counters || !window.fetch || !window.DOMParser) return;
  setInterval(function () {
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("counters");
        if (fresh) counters.innerHTML = fresh.innerHTML;
      })
      .catch(function () {});
  }, 5000);
})();
