/* Parley chat widget. Embed with:
   <script src="https://HOST/widget.js" data-key="PUBLIC_KEY" async></script>
   No dependencies. Everything is drawn in a shadow root; every text goes in with textContent. */
(function () {
  "use strict";
  var d = document, w = window;
  var tag = d.currentScript || d.querySelector('script[data-key][src*="widget.js"]');
  if (!tag || !w.fetch || !w.EventSource || !Element.prototype.attachShadow) return;
  var KEY = tag.getAttribute("data-key") || "";
  var BASE = new URL(tag.src, location.href).origin;
  var SLOT = "parley:" + KEY;
  var SR = w.SpeechRecognition || w.webkitSpeechRecognition;
  var synth = w.speechSynthesis;
  var cfg, token, es, host, root, ui = {}, lastId = "", seen = {}, pending = null, typingTimer, retryTimer, backoff = 1000, voiceUsed = false, busy = false;

  function store(v) {
    try { if (v) localStorage.setItem(SLOT, v); else localStorage.removeItem(SLOT); } catch (e) { /* storage blocked */ }
  }
  function stored() {
    try { return localStorage.getItem(SLOT); } catch (e) { return null; }
  }

  function el(name, attrs, text) {
    var n = d.createElement(name);
    for (var k in attrs || {}) if (attrs[k] != null) n.setAttribute(k, attrs[k]);
    if (text != null) n.textContent = text;
    return n;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) if (arguments[i]) parent.appendChild(arguments[i]);
    return parent;
  }
  function state(s) { host.setAttribute("data-state", s); }

  function call(method, path, body) {
    var h = {};
    if (body) h["Content-Type"] = "application/json";
    if (token) h.Authorization = "Bearer " + token;
    return fetch(BASE + "/widget/v1/" + path + (path.indexOf("?") < 0 ? "?" : "&") + "key=" + encodeURIComponent(KEY), {
      method: method, headers: h, body: body ? JSON.stringify(body) : undefined, mode: "cors", credentials: "omit"
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.ok) return j;
        var e = new Error((j.error && j.error.message) || "Request failed (" + r.status + ")");
        e.status = r.status; e.code = j.error && j.error.code; e.retry = r.headers.get("Retry-After");
        throw e;
      });
    });
  }

  var CSS = ":host{all:initial}*{box-sizing:border-box;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    "button{cursor:pointer;border:0;border-radius:8px;padding:8px 12px;background:var(--p);color:var(--t)}" +
    "button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}" +
    ".launcher{border-radius:28px;padding:14px 20px;font-weight:600;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".panel{position:absolute;bottom:64px;width:min(370px,calc(100vw - 32px));height:min(540px,calc(100vh - 100px));background:#fff;color:#111827;border-radius:14px;box-shadow:0 10px 36px rgba(0,0,0,.3);display:flex;flex-direction:column;overflow:hidden}" +
    ".panel[hidden],[hidden]{display:none!important}.r{right:0}.l{left:0}" +
    "header{display:flex;align-items:center;justify-content:space-between;padding:10px 14px;background:var(--p);color:var(--t)}" +
    "h2{margin:0;font-size:16px;font-weight:600;color:inherit}.x{background:transparent;font-size:20px;padding:2px 8px}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f9fafb}" +
    ".m{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;background:#e5e7eb;color:#111827;align-self:flex-start}" +
    ".me{align-self:flex-end;background:var(--p);color:var(--t)}.typing{padding:0 14px 6px;color:#4b5563;font-size:13px;background:#f9fafb}" +
    "form{padding:10px;border-top:1px solid #e5e7eb;display:flex;gap:6px;background:#fff}.pre{flex-direction:column;overflow-y:auto}" +
    "label{font-weight:600;font-size:13px}input,select,textarea{width:100%;padding:8px;border:1px solid #6b7280;border-radius:8px;background:#fff;color:#111827}" +
    "textarea{resize:none;flex:1}.f{display:flex;flex-direction:column;gap:3px}.fe,.note{color:#b91c1c;font-size:13px;margin:0}.note{padding:0 12px}" +
    "[aria-invalid=true]{border-color:#b91c1c}.mic[aria-pressed=true]{background:#b91c1c;color:#fff}";

  function build() {
    var right = cfg.position !== "bottom-left";
    host = el("div", { "data-parley-widget": KEY, "data-state": "loading" });
    var s = host.style;
    s.setProperty("all", "initial", "important");
    s.setProperty("position", "fixed", "important");
    s.setProperty("z-index", "2147483000", "important");
    s.setProperty("bottom", "20px", "important");
    s.setProperty(right ? "right" : "left", "20px", "important");
    s.setProperty("display", "block", "important");
    root = host.attachShadow({ mode: "open" });
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      add(root, el("style", null, CSS));
    }
    var wrap = el("div");
    wrap.style.setProperty("--p", cfg.primary_color);
    wrap.style.setProperty("--t", cfg.text_color);
    ui.launcher = el("button", { type: "button", "class": "launcher", "aria-expanded": "false", "aria-controls": "pw-panel", "aria-label": "Open chat: " + cfg.title }, "Chat");
    ui.panel = el("section", { id: "pw-panel", "class": "panel " + (right ? "r" : "l"), role: "dialog", "aria-labelledby": "pw-title", hidden: "" });
    ui.close = el("button", { type: "button", "class": "x", "aria-label": "Close chat" }, "\u00d7");
    ui.log = el("div", { "class": "log", role: "log", "aria-live": "polite", "aria-label": "Conversation", tabindex: "0" });
    ui.typing = el("div", { "class": "typing", role: "status", "aria-live": "polite" });
    ui.note = el("p", { "class": "note", role: "alert" });
    ui.pre = buildPrechat();
    ui.compose = el("form", { "class": "compose", hidden: "" });
    ui.text = el("textarea", { id: "pw-text", rows: "2", maxlength: String(cfg.max_message_chars || 2000), "aria-label": "Message", placeholder: "Type your message" });
    ui.mic = el("button", { type: "button", "class": "mic", "aria-pressed": "false", hidden: "" }, "Speak");
    ui.send = el("button", { type: "submit" }, "Send");
    add(ui.compose, el("label", { "for": "pw-text", "class": "sr" }, "Message"), ui.text, ui.mic, ui.send);
    add(ui.panel, add(el("header"), el("h2", { id: "pw-title" }, cfg.title), ui.close), ui.log, ui.typing, ui.note, ui.pre, ui.compose);
    add(root, add(wrap, ui.panel, ui.launcher));
    if (cfg.greeting) add(ui.log, el("div", { "class": "m", "data-greeting": "" }, cfg.greeting));

    ui.launcher.addEventListener("click", function () { toggle(ui.panel.hidden); });
    ui.close.addEventListener("click", function () { toggle(false); });
    ui.panel.addEventListener("keydown", function (e) { if (e.key === "Escape") toggle(false); });
    ui.compose.addEventListener("submit", function (e) { e.preventDefault(); voiceUsed = false; send(ui.text.value); });
    ui.text.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); voiceUsed = false; send(ui.text.value); }
    });
    if (cfg.mode === "voice_chat" && SR) {
      ui.mic.hidden = false;
      ui.mic.addEventListener("click", listen);
    }
    (d.body || d.documentElement).appendChild(host);
  }

  function buildPrechat() {
    var f = el("form", { "class": "pre", novalidate: "", hidden: "", "aria-label": "Before we start" });
    ui.fields = [];
    (cfg.prechat_fields || []).forEach(function (fd, i) {
      var id = "pw-f" + i, input;
      if (fd.type === "select") {
        input = el("select", { id: id });
        add(input, el("option", { value: "" }, "Choose\u2026"));
        (fd.options || []).forEach(function (o) { add(input, el("option", { value: o }, o)); });
      } else {
        input = el("input", { id: id, type: fd.type === "email" ? "email" : fd.type === "phone" ? "tel" : "text", autocomplete: fd.type === "email" ? "email" : fd.type === "phone" ? "tel" : fd.name === "name" ? "name" : "on" });
      }
      input.name = fd.name;
      if (fd.required) { input.required = true; input.setAttribute("aria-required", "true"); }
      var err = el("p", { id: id + "e", "class": "fe", hidden: "" });
      input.setAttribute("aria-describedby", id + "e");
      add(f, add(el("div", { "class": "f" }), el("label", { "for": id }, fd.label + (fd.required ? " (required)" : "")), input, err));
      ui.fields.push({ def: fd, input: input, err: err });
    });
    ui.preErr = el("p", { "class": "fe", role: "alert" });
    add(f, ui.preErr, el("button", { type: "submit" }, "Start chat"));
    f.addEventListener("submit", function (e) { e.preventDefault(); startFromForm(); });
    return f;
  }

  function fieldError(fd, v) {
    if (!v) return fd.required ? "Please fill in " + fd.label + "." : "";
    if (v.length > 500) return fd.label + " is too long.";
    if (fd.type === "email" && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v)) return "Enter an email address such as name@example.com.";
    if (fd.type === "phone") {
      var n = v.replace(/\D/g, "").length;
      if (!/^\+?[0-9 ().\-]{6,24}$/.test(v) || n < 6 || n > 15) return "Enter a phone number (6 to 15 digits).";
    }
    if (fd.type === "select" && (fd.options || []).indexOf(v) < 0) return "Choose one of the options.";
    return "";
  }

  function startFromForm() {
    var answers = {}, first = null;
    ui.fields.forEach(function (f) {
      var v = f.input.value.trim(), msg = fieldError(f.def, v);
      f.err.textContent = msg;
      f.err.hidden = !msg;
      f.input.setAttribute("aria-invalid", msg ? "true" : "false");
      if (msg && !first) first = f.input;
      if (v) answers[f.def.name] = v;
    });
    if (first) { first.focus(); return; }
    ui.preErr.textContent = "";
    start(answers).then(function () {
      ui.pre.hidden = true;
      ui.compose.hidden = false;
      ui.text.focus();
    }, function (e) { ui.preErr.textContent = e.message; });
  }

  function start(answers) {
    return call("POST", "sessions", { key: KEY, prechat: answers, page_url: location.href, referrer: d.referrer }).then(function (j) {
      token = j.session_token;
      store(token);
      lastId = "";
      connect();
    });
  }

  function resume() {
    return call("POST", "sessions", { key: KEY }).then(function () { connect(); }, function (e) {
      if (e.status === 401) { reset(); return; }
      throw e;
    });
  }

  function reset() {
    token = null;
    store(null);
    if (es) es.close();
    es = null;
    state("idle");
    showForm();
  }

  function showForm() {
    var needForm = !token && ui.fields.length > 0;
    ui.pre.hidden = !needForm;
    ui.compose.hidden = needForm;
  }

  function toggle(open) {
    ui.panel.hidden = !open;
    ui.launcher.setAttribute("aria-expanded", String(open));
    ui.launcher.textContent = open ? "Close" : "Chat";
    ui.launcher.setAttribute("aria-label", open ? "Close chat" : "Open chat: " + cfg.title);
    if (open) {
      showForm();
      var target = !ui.pre.hidden && ui.fields.length ? ui.fields[0].input : ui.text;
      target.focus();
    } else {
      ui.launcher.focus();
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    if (es) es.close();
    state("connecting");
    es = new EventSource(BASE + "/widget/v1/events?key=" + encodeURIComponent(KEY) + "&token=" + encodeURIComponent(token) + "&after=" + encodeURIComponent(lastId));
    es.addEventListener("message", function (e) { render(JSON.parse(e.data), true); });
    es.addEventListener("delta", function (e) { delta(JSON.parse(e.data).text); });
    es.addEventListener("status", function (e) {
      var st = JSON.parse(e.data).status;
      host.setAttribute("data-status", st);
      if (st !== "active") typing(false);
      if (st === "ended") { token = null; store(null); if (es) es.close(); showForm(); ui.note.textContent = "This conversation has ended. Write again to start a new one."; }
    });
    es.addEventListener("ready", function () { backoff = 1000; ui.note.textContent = ""; state("ready"); });
    es.onerror = function () {
      if (!es || es.readyState !== 2) { state("reconnecting"); return; } // the browser retries with Last-Event-ID
      state("reconnecting");
      retryTimer = setTimeout(function () { if (token) resume().catch(later); }, backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  }
  function later() {
    retryTimer = setTimeout(function () { if (token) resume().catch(later); }, backoff);
    backoff = Math.min(backoff * 2, 30000);
  }

  // render shows a message once. Only the stream moves lastId: it resumes after what it delivered.
  function render(m, fromStream) {
    if (fromStream) lastId = m.id;
    if (!m || !m.id || seen[m.id]) return;
    seen[m.id] = 1;
    var mine = m.role === "user", streamed = false;
    if (!mine) {
      if (pending) { streamed = pending.textContent.length > 0; pending.remove(); pending = null; }
      typing(false);
    }
    var b = el("div", { "class": "m" + (mine ? " me" : ""), "data-id": m.id, "data-role": m.role, "data-streamed": streamed ? "true" : null });
    add(b, el("span", { "class": "sr" }, mine ? "You: " : m.role === "agent" ? "Agent: " : "Assistant: "), d.createTextNode(m.text));
    ui.log.appendChild(b);
    ui.log.scrollTop = ui.log.scrollHeight;
    if (!mine) speak(m.text);
  }

  function delta(text) {
    if (!pending) {
      pending = el("div", { "class": "m", "aria-hidden": "true", "data-pending": "" });
      ui.log.appendChild(pending);
      typing(false);
    }
    pending.textContent += text;
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function typing(on) {
    clearTimeout(typingTimer);
    ui.typing.textContent = on ? "Assistant is typing\u2026" : "";
    host.setAttribute("data-typing", on ? "true" : "false");
    if (on) typingTimer = setTimeout(function () { typing(false); }, 45000);
  }

  function send(raw) {
    var text = (raw || "").trim();
    if (!text || busy) return;
    if (text.length > (cfg.max_message_chars || 2000)) { ui.note.textContent = "Your message is too long."; return; }
    busy = true;
    ui.note.textContent = "";
    ui.text.value = "";
    var ready = token ? Promise.resolve() : start({});
    ready.then(function () { return call("POST", "messages", { text: text }); }).then(function (j) {
      render(j.message);
      if (host.getAttribute("data-status") !== "handoff" && !pending) typing(true);
    }, function (e) {
      ui.text.value = text;
      if (e.status === 401) { reset(); ui.note.textContent = "Your session ended. Please start again."; return; }
      ui.note.textContent = e.status === 429 ? "You are sending messages too quickly. Try again in " + (e.retry || 1) + " s." : e.message;
    }).then(function () { busy = false; ui.text.focus(); });
  }

  function speak(text) {
    if (cfg.mode !== "voice_chat" || !synth || !voiceUsed || !w.SpeechSynthesisUtterance) return;
    synth.cancel();
    synth.speak(new SpeechSynthesisUtterance(text));
  }

  function listen() {
    var rec = new SR();
    rec.lang = d.documentElement.lang || navigator.language || "en";
    rec.interimResults = false;
    rec.maxAlternatives = 1;
    ui.mic.setAttribute("aria-pressed", "true");
    ui.mic.textContent = "Listening\u2026";
    rec.onresult = function (e) { voiceUsed = true; send(e.results[0][0].transcript); };
    rec.onerror = function (e) { ui.note.textContent = "Voice input failed (" + e.error + "). You can type instead."; };
    rec.onend = function () { ui.mic.setAttribute("aria-pressed", "false"); ui.mic.textContent = "Speak"; };
    try { rec.start(); } catch (e) { rec.onend(); }
  }

  function boot() {
    call("GET", "config").then(function (j) {
      cfg = j.config;
      build();
      token = stored();
      state("idle");
      if (token) resume().catch(function (e) { ui.note.textContent = e.message; later(); });
    }, function (e) {
      // Not allowed on this site (403), or a wrong key: show nothing, say why in the console.
      var mark = el("div", { "data-parley-widget": KEY, "data-state": e.status === 403 ? "refused" : "error", hidden: "" });
      (d.body || d.documentElement).appendChild(mark);
      if (w.console) console.warn("Parley widget: " + e.message);
    });
  }

  w.addEventListener("online", function () { if (token && (!es || es.readyState === 2)) { backoff = 1000; resume().catch(later); } });
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", boot); else boot();
})();
