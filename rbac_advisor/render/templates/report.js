(function () {
  "use strict";
  var tools = document.getElementById("tools");
  var box = document.getElementById("q");
  var shown = document.getElementById("qn");
  var lists = Array.prototype.slice.call(document.querySelectorAll(".list"));
  var index = null;
  var timer = 0;

  function build() {
    index = [];
    lists.forEach(function (list) {
      var items = list.querySelectorAll(":scope > .ch > details, :scope > tr");
      for (var i = 0; i < items.length; i++) {
        index.push({ list: list, el: items[i], text: items[i].textContent.toLowerCase() });
      }
    });
  }

  function apply() {
    if (index === null) { build(); }
    var terms = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var visible = 0;
    var perList = new Map();
    var perChunk = new Map();
    document.body.classList.toggle("f", terms.length > 0);
    index.forEach(function (entry) {
      var hit = terms.every(function (t) { return entry.text.indexOf(t) !== -1; });
      if (entry.el.hidden === hit) { entry.el.hidden = !hit; }
      var chunk = entry.el.parentElement;
      if (!perChunk.has(chunk)) { perChunk.set(chunk, 0); }
      if (hit) {
        visible += 1;
        perList.set(entry.list, (perList.get(entry.list) || 0) + 1);
        perChunk.set(chunk, perChunk.get(chunk) + 1);
      }
    });
    perChunk.forEach(function (count, chunk) {
      if (chunk.classList.contains("ch")) { chunk.hidden = count === 0; }
    });
    lists.forEach(function (list) {
      if (perList.get(list) || !terms.length) {
        list.removeAttribute("data-empty");
      } else {
        list.setAttribute("data-empty", "");
      }
    });
    shown.textContent = terms.length ? visible + " of " + index.length + " shown" : "";
  }

  function setAll(open) {
    document.querySelectorAll(".ch > details").forEach(function (d) {
      if (!d.hidden) { d.open = open; }
    });
  }

  if (tools && box && shown) {
    tools.hidden = false;
    box.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(apply, 150);
    });
    box.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { clearTimeout(timer); apply(); }
      if (ev.key === "Escape") { box.value = ""; clearTimeout(timer); apply(); }
    });
    document.getElementById("ex").addEventListener("click", function () { setAll(true); });
    document.getElementById("co").addEventListener("click", function () { setAll(false); });
  }

  var opened = [];
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details:not([open])").forEach(function (d) {
      d.open = true;
      opened.push(d);
    });
  });
  window.addEventListener("afterprint", function () {
    opened.forEach(function (d) { d.open = false; });
    opened = [];
  });
})();
