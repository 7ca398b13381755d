// Offline search from file://.
//
// Material's search runs in a Web Worker, and browsers refuse to start a worker from a page
// opened as a file. Material's offline plugin would load a shim for that from a CDN, which a
// site that must work without a network cannot use; this file takes its place (its name
// tells the plugin that a shim is present). On file:// pages it runs the worker's script in
// a hidden iframe of the same page and passes messages the way a worker would; served over
// http(s), it changes nothing.
(function () {
  if (window.location.protocol !== "file:") {
    return;
  }

  function FrameWorker(url) {
    var owner = this;
    var listeners = [];
    var pending = [];
    var loaded = false;
    var frame = document.createElement("iframe");
    frame.hidden = true;
    frame.setAttribute("aria-hidden", "true");
    frame.setAttribute("tabindex", "-1");
    (document.body || document.documentElement).appendChild(frame);
    var scope = frame.contentWindow;

    // Objects cross between two windows here; structured clones give each side objects of
    // its own realm, as a real worker's messages would be (Array.isArray, instanceof).
    function toWorker(data) {
      scope.dispatchEvent(new scope.MessageEvent("message", { data: scope.structuredClone(data) }));
    }

    scope.postMessage = function (data) {
      var event = new MessageEvent("message", { data: structuredClone(data) });
      listeners.slice().forEach(function (listener) {
        listener.call(owner, event);
      });
      if (typeof owner.onmessage === "function") {
        owner.onmessage(event);
      }
    };

    this.onmessage = null;
    this.postMessage = function (data) {
      if (loaded) {
        toWorker(data);
      } else {
        pending.push(data);
      }
    };
    this.addEventListener = function (type, listener) {
      if (type === "message") {
        listeners.push(listener);
      }
    };
    this.removeEventListener = function (type, listener) {
      var index = listeners.indexOf(listener);
      if (type === "message" && index >= 0) {
        listeners.splice(index, 1);
      }
    };
    this.terminate = function () {
      frame.remove();
    };

    var script = scope.document.createElement("script");
    script.src = new URL(url, document.baseURI).href;
    script.onload = function () {
      loaded = true;
      pending.splice(0).forEach(toWorker);
    };
    scope.document.head.appendChild(script);
  }

  window.Worker = FrameWorker;
})();
