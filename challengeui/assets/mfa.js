// mfagate page enhancements. Everything here is optional: the pages work
// without it. Loaded from 'self' only (no inline script, see the CSP).
(function () {
  "use strict";

  // A polite live region so screen readers hear "Copied".
  var live = document.createElement("p");
  live.className = "copied-status";
  live.setAttribute("role", "status");
  live.setAttribute("aria-live", "polite");

  function textOf(el) {
    // A list copies one item per line; a secret shown in groups copies without spaces.
    if (el.tagName === "OL" || el.tagName === "UL") {
      var items = el.querySelectorAll("li");
      var out = [];
      for (var i = 0; i < items.length; i++) {
        out.push(items[i].textContent.trim());
      }
      return out.join("\n") + "\n";
    }
    var t = el.textContent.trim();
    if (el.hasAttribute("data-copy-compact")) {
      t = t.replace(/\s+/g, "");
    }
    return t;
  }

  function setupCopy() {
    if (!navigator.clipboard || !window.isSecureContext) {
      return; // buttons stay hidden; the text is selectable
    }
    var buttons = document.querySelectorAll("[data-copy-target]");
    if (buttons.length === 0) {
      return;
    }
    document.body.appendChild(live);
    Array.prototype.forEach.call(buttons, function (btn) {
      var target = document.getElementById(btn.getAttribute("data-copy-target"));
      if (!target) {
        return;
      }
      var label = btn.textContent;
      // A button named "Copy widget key" reads "Copied widget key" while it
      // shows "Copied": the name keeps the words on it.
      var name = btn.getAttribute("aria-label");
      var timer = 0;
      btn.hidden = false;
      btn.addEventListener("click", function () {
        navigator.clipboard.writeText(textOf(target)).then(function () {
          btn.textContent = "Copied";
          if (name) {
            btn.setAttribute("aria-label", name.replace(/^Copy\b/, "Copied"));
          }
          live.textContent = "Copied to the clipboard";
          clearTimeout(timer);
          timer = setTimeout(function () {
            btn.textContent = label;
            if (name) {
              btn.setAttribute("aria-label", name);
            }
            live.textContent = "";
          }, 2000);
        }, function () {
          live.textContent = "Could not copy. Select the text and copy it by hand.";
        });
      });
    });
  }

  // Keep one-time-code inputs to digits and spaces (pattern="[0-9 ]*").
  function setupCodeInputs() {
    var inputs = document.querySelectorAll('input[autocomplete="one-time-code"]');
    Array.prototype.forEach.call(inputs, function (input) {
      input.addEventListener("input", function () {
        var clean = input.value.replace(/[^0-9 ]/g, "");
        if (clean !== input.value) {
          input.value = clean;
        }
      });
    });
  }

  function init() {
    setupCopy();
    setupCodeInputs();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
