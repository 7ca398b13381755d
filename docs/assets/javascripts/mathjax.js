// MathJax 3 settings for pymdownx.arithmatex (generic mode). The MathJax bundle itself is
// copied into the site at build time (assets/mathjax/tex-svg.js): nothing comes from a CDN.
//
// The site ships only tex-svg.js. MathJax's context menu can switch on features that load
// further components at run time (the accessibility explorer and collapsible math need
// a11y/sre.js, a11y/semantic-enrich.js and input/mml.js; the CHTML renderer needs
// output/chtml.js and its fonts). Those are not in the site, and a failed load stops all
// typesetting; the menu also stores the choice in localStorage, so every later page stayed
// blank until the site data was cleared. Below, such stored choices are dropped before
// MathJax reads them, and the menu entries that would load a component are hidden.
(function () {
  var STORAGE = "MathJax-Menu-Settings";
  // Settings whose value makes the menu load a component that the site does not have.
  var NEEDS_COMPONENT = ["explorer", "collapsible", "autocollapse", "renderer", "speech", "braille"];
  try {
    var stored = JSON.parse(window.localStorage.getItem(STORAGE) || "null");
    if (stored && typeof stored === "object") {
      NEEDS_COMPONENT.forEach(function (key) { delete stored[key]; });
      if (Object.keys(stored).length) {
        window.localStorage.setItem(STORAGE, JSON.stringify(stored));
      } else {
        window.localStorage.removeItem(STORAGE);
      }
    }
  } catch (error) {
    // Storage can be unavailable (privacy settings, some file:// setups): nothing to clean.
  }
})();

window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
    menuOptions: {
      settings: {
        renderer: "SVG",
        explorer: false,
        collapsible: false,
        autocollapse: false,
        // Built into tex-svg.js: the hidden MathML that screen readers read.
        assistiveMml: true,
      },
    },
  },
  svg: { fontCache: "global" },
  startup: {
    ready: function () {
      MathJax.startup.defaultReady();
      var menu = MathJax.startup.document.menu;
      var entries = menu && menu.menu;
      if (!entries || !entries.findID) {
        return;
      }
      // The whole Accessibility submenu needs components outside tex-svg.js; so does
      // choosing a renderer other than the SVG one that is loaded.
      [["Accessibility"], ["Settings", "Renderer"]].forEach(function (path) {
        var entry = entries.findID.apply(entries, path);
        if (entry && entry.hide) {
          entry.hide();
        }
      });
    },
  },
};

// Material can swap pages without a reload; typeset the new page when it does.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
