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

  // Keep authenticator-code inputs to digits, spaces and dashes (a pasted
  // "123 456" or "123-456" works), and send a challenge code as soon as
  // its sixth digit is in.
  function setupCodeInputs() {
    var inputs = document.querySelectorAll('input[autocomplete="one-time-code"][inputmode="numeric"]');
    Array.prototype.forEach.call(inputs, function (input) {
      var sent = false;
      input.addEventListener("input", function () {
        var clean = input.value.replace(/[^0-9 \-]/g, "");
        if (clean !== input.value) {
          input.value = clean;
        }
        var digits = clean.replace(/[^0-9]/g, "");
        if (input.hasAttribute("data-autosubmit") && digits.length === 6 && !sent && input.form) {
          sent = true;
          if (input.form.requestSubmit) {
            input.form.requestSubmit();
          } else {
            input.form.submit();
          }
        } else if (digits.length !== 6) {
          sent = false;
        }
      });
    });
  }

  // Dialogs: Tab wraps around inside the open dialog (the page behind is
  // inert), and Escape does what its Cancel does, where it has one.
  function setupDialogs() {
    var dialog = document.querySelector("dialog[open]");
    if (!dialog) {
      return;
    }
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && dialog.hasAttribute("data-cancel")) {
        e.preventDefault();
        window.location.href = dialog.getAttribute("data-cancel");
        return;
      }
      if (e.key !== "Tab") {
        return;
      }
      var items = Array.prototype.filter.call(
        dialog.querySelectorAll('a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"])'),
        function (el) { return !el.disabled && !el.hidden && el.type !== "hidden" && el.offsetParent !== null; });
      if (items.length === 0) {
        return;
      }
      var first = items[0], last = items[items.length - 1];
      var inside = dialog.contains(document.activeElement);
      if (e.shiftKey && (document.activeElement === first || !inside)) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (document.activeElement === last || !inside)) {
        e.preventDefault();
        first.focus();
      }
    });
  }

  // Focus goes where the address's #fragment points: back from a dialog,
  // to the control that opened it; after an admin action, to its notice
  // (the fragment scrolls it into view; focus makes screen readers read it).
  function restoreFocus() {
    if (!window.location.hash || document.querySelector("dialog[open]")) {
      return;
    }
    var el = document.getElementById(window.location.hash.slice(1));
    if (el && (el.tagName === "A" || el.tagName === "BUTTON" || el.hasAttribute("tabindex"))) {
      el.focus();
    }
  }

  function init() {
    setupCopy();
    setupCodeInputs();
    setupDialogs();
    restoreFocus();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
