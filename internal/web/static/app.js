// Parley dashboard: small progressive enhancements and the pages that call the JSON API.
// No framework, no build step. User text is always inserted with textContent; HTML comes only
// from the server's own templates (live transcript lines).
(function () {
  "use strict";
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = csrfMeta ? csrfMeta.content : "";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // api calls the JSON API with the session cookie and CSRF header. It resolves with the decoded
  // body, or rejects with an Error whose message is the API's own (or "not available in this build"
  // for an endpoint this build does not have).
  function api(method, path, body) {
    var opts = { method: method, headers: { "X-CSRF-Token": CSRF, "Accept": "application/json" }, credentials: "same-origin" };
    if (body instanceof FormData) {
      opts.body = body;
    } else if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (res) {
      if (res.status === 204) return {};
      return res.text().then(function (txt) {
        var data = null;
        try { data = txt ? JSON.parse(txt) : {}; } catch (e) { data = null; }
        if (res.ok) return data || {};
        var err;
        if (res.status === 404 && data && data.error && /^no such endpoint/.test(data.error.message || "")) {
          err = new Error("This feature is not available in this build.");
          err.unavailable = true;
        } else if (res.status === 404 && !data) {
          err = new Error("This feature is not available in this build.");
          err.unavailable = true;
        } else {
          err = new Error(data && data.error ? data.error.message + " (" + data.error.code + ")" : "Request failed with status " + res.status);
        }
        err.status = res.status;
        err.code = data && data.error ? data.error.code : "";
        throw err;
      });
    });
  }

  function showError(err, target) {
    var box = target || $("#api-error");
    if (!box) { window.alert(err.message || String(err)); return; }
    box.textContent = err.message || String(err);
    box.hidden = false;
  }
  function clearError(target) {
    var box = target || $("#api-error");
    if (box) { box.hidden = true; box.textContent = ""; }
  }

  function formJSON(form) {
    var out = {};
    new FormData(form).forEach(function (v, k) { if (typeof v === "string") out[k] = v; });
    return out;
  }

  // Buttons that ask before acting.
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("[data-confirm]");
    if (b && !window.confirm(b.getAttribute("data-confirm"))) ev.preventDefault();
  });

  // WhatsApp window countdowns update themselves.
  function tickWindows() {
    $all(".window[data-expires]").forEach(function (w) {
      var exp = Date.parse(w.getAttribute("data-expires"));
      if (!exp) return;
      var left = exp - Date.now();
      if (left <= 0) { w.textContent = "window closed"; w.classList.remove("open"); w.classList.add("closed"); return; }
      var h = Math.floor(left / 3600000), m = Math.floor((left % 3600000) / 60000);
      w.textContent = "window " + h + "h " + (m < 10 ? "0" : "") + m + "m left";
    });
  }

  // Read a server-sent event stream from a fetch response, calling onEvent(name, data).
  function readSSE(res, onEvent) {
    var reader = res.body.getReader();
    var dec = new TextDecoder();
    var buf = "";
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) return;
        buf += dec.decode(r.value, { stream: true });
        var i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          var chunk = buf.slice(0, i); buf = buf.slice(i + 2);
          var name = "message", data = "";
          chunk.split("\n").forEach(function (line) {
            if (line.indexOf("event: ") === 0) name = line.slice(7);
            else if (line.indexOf("data: ") === 0) data += line.slice(6);
          });
          if (data) { try { onEvent(name, JSON.parse(data)); } catch (e) { /* ignore a malformed event */ } }
        }
        return pump();
      });
    }
    return pump();
  }

  // appendMessage adds a transcript line, or replaces it when the message changed (a WhatsApp
  // delivery status moving from sent to delivered to read, fresh media).
  function appendMessage(list, id, html) {
    if (!list) return;
    var tpl = document.createElement("template");
    tpl.innerHTML = html; // rendered and escaped by the server's html/template
    var old = document.getElementById("m-" + id);
    if (old) {
      var open = old.querySelectorAll("details[open]").length > 0;
      var fresh = tpl.content.firstElementChild;
      if (fresh) {
        if (open) fresh.querySelectorAll("details").forEach(function (d) { d.open = true; });
        old.replaceWith(fresh);
      }
      return;
    }
    list.appendChild(tpl.content);
    var last = list.lastElementChild;
    if (last && last.scrollIntoView) last.scrollIntoView({ block: "nearest" });
  }

  var pages = {};

  pages.conversations = function () {
    var range = $("#f-range");
    function toggle() {
      var custom = range && range.value === "custom";
      $all(".custom-range").forEach(function (f) { f.hidden = !custom; });
    }
    if (range) { range.addEventListener("change", toggle); toggle(); }
    // Selecting a filter applies it (the URL changes; the back button goes back).
    $all("#filters select").forEach(function (s) {
      s.addEventListener("change", function () { if (s.id !== "f-range" || s.value !== "custom") $("#filters").requestSubmit(); });
    });
    // Leave empty fields out of the URL.
    var form = $("#filters");
    if (form) form.addEventListener("submit", function () {
      $all("input, select", form).forEach(function (i) { if (!i.value) i.disabled = true; });
      if (range && range.value !== "custom") { $("#f-from").disabled = true; $("#f-to").disabled = true; }
    });
    tickWindows(); setInterval(tickWindows, 30000);
  };

  pages.conversation = function () {
    tickWindows(); setInterval(tickWindows, 30000);
    var detail = $("#detail");
    var list = $("#messages");
    var live = $("#live-status");
    if (detail && window.EventSource) {
      var last = detail.getAttribute("data-last") || "";
      var src = new EventSource("/conversations/" + encodeURIComponent(detail.getAttribute("data-id")) + "/events?after=" + encodeURIComponent(last));
      src.addEventListener("open", function () { live.textContent = "Live: new messages appear here."; live.setAttribute("data-live", "1"); });
      src.addEventListener("message", function (ev) {
        var d = JSON.parse(ev.data);
        appendMessage(list, d.id, d.html);
        detail.setAttribute("data-last", d.id);
      });
      src.addEventListener("conversation", function (ev) {
        var s = JSON.parse(ev.data);
        var st = $("#conv-status .status");
        if (st) { st.textContent = s.status; st.className = "status status-" + s.status; }
        // The actions follow the status (handed off, resumed or ended elsewhere).
        $all("[data-when]").forEach(function (e) { e.hidden = e.getAttribute("data-when").split(" ").indexOf(s.status) < 0; });
        var set = function (id, v) { var e = document.getElementById(id); if (e) e.textContent = v; };
        set("u-messages", s.message_count); set("u-tokens-in", s.tokens_in); set("u-tokens-out", s.tokens_out); set("u-cost", s.cost);
        var win = document.getElementById("conv-window");
        if (win && s.window_expires) { win.setAttribute("data-expires", s.window_expires); tickWindows(); }
      });
      src.addEventListener("reload", function () { window.location.reload(); });
      src.addEventListener("error", function () { live.textContent = "Live updates interrupted; reconnecting…"; });
    }
    // The template picker (WhatsApp): loads the workspace's templates from the API.
    var picker = $("#template-picker");
    if (picker) {
      var select = $("#template-select");
      var result = $("#template-result");
      var templates = [];
      api("GET", "/api/v1/whatsapp/templates").then(function (body) {
        templates = body.data || [];
        select.textContent = "";
        if (!templates.length) { select.appendChild(el("option", "No templates yet (add them on the WhatsApp page)")); return; }
        templates.forEach(function (t, i) { var o = el("option", t.name + " (" + t.language + ")"); o.value = String(i); select.appendChild(o); });
      }, function (err) { select.textContent = ""; select.appendChild(el("option", err.message)); });
      $("#template-form").addEventListener("submit", function (ev) {
        ev.preventDefault();
        var t = templates[Number(select.value)];
        if (!t) { result.textContent = "Choose a template."; return; }
        api("POST", "/api/v1/whatsapp/messages", { sender_id: picker.getAttribute("data-sender"), to: picker.getAttribute("data-to"), template: { name: t.name, language: t.language } })
          .then(function () { result.textContent = "Template queued for sending."; }, function (err) { result.textContent = err.message; });
      });
    }
  };

  pages["test-chat"] = function () {
    var form = $("#chat-form");
    if (!form) return;
    var list = $("#messages");
    var typing = $("#typing"), typingText = $("#typing-text");
    var errBox = $("#chat-error");
    var text = $("#chat-text");
    text.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var msg = text.value;
      if (!msg.trim()) return;
      clearError(errBox);
      var btn = $("button", form);
      btn.disabled = true;
      text.value = "";
      typingText.textContent = ""; typing.hidden = false;
      var body = new URLSearchParams(); body.set("text", msg);
      fetch(form.action, { method: "POST", credentials: "same-origin", body: body,
        headers: { "X-CSRF-Token": CSRF, "Accept": "text/event-stream" } }).then(function (res) {
        if (!res.ok) {
          return res.json().then(function (d) { throw new Error(d.error ? d.error.message : "The message was not sent."); },
            function () { throw new Error("The message was not sent (status " + res.status + ")."); });
        }
        return readSSE(res, function (name, d) {
          if (name === "message") {
            appendMessage(list, d.id, d.html);
            if (/role-assistant/.test(d.html)) { typingText.textContent = ""; }
          } else if (name === "delta") {
            typingText.textContent += d.text;
          } else if (name === "error") {
            showError(new Error(d.message), errBox);
          } else if (name === "done") {
            typing.hidden = true;
            form.setAttribute("data-done", String(Number(form.getAttribute("data-done") || "0") + 1));
          }
        });
      }).catch(function (err) { showError(err, errBox); text.value = msg; })
        .then(function () { btn.disabled = false; typing.hidden = true; text.focus(); });
    });
  };

  pages.assistant = function () {
    var hint = $("#kb-hint");
    if (!hint) return;
    var input = $("#a-kbs");
    api("GET", "/api/v1/knowledge-bases").then(function (body) {
      var kbs = body.data || [];
      if (!kbs.length) { hint.textContent = "No knowledge bases yet: create them on the Knowledge Bases page."; return; }
      // One labelled checkbox per knowledge base, kept in step with the ids field.
      hint.textContent = "";
      var chosen = function () { return input.value.split(/[\s,]+/).filter(Boolean); };
      var box = el("fieldset", null, "kb-choices");
      box.appendChild(el("legend", "Knowledge bases"));
      kbs.forEach(function (kb) {
        var id = "kb-" + kb.id;
        var cb = document.createElement("input");
        cb.type = "checkbox"; cb.id = id; cb.value = kb.id; cb.checked = chosen().indexOf(kb.id) >= 0;
        cb.addEventListener("change", function () {
          var ids = chosen().filter(function (x) { return x !== kb.id; });
          if (cb.checked) ids.push(kb.id);
          input.value = ids.join(", ");
        });
        var label = el("label", kb.name); label.htmlFor = id; label.className = "check";
        var row = el("div"); row.appendChild(cb); row.appendChild(label); box.appendChild(row);
      });
      hint.appendChild(box);
    }, function (err) { hint.textContent = err.unavailable ? "Knowledge bases are not available in this build." : err.message; });
  };

  pages.knowledge = function () {
    var current = null;
    function loadList() {
      api("GET", "/api/v1/knowledge-bases").then(function (body) {
        var ul = $("#kb-list"); ul.textContent = "";
        var kbs = body.data || [];
        if (!kbs.length) ul.appendChild(el("li", "No knowledge bases yet.", "hint"));
        kbs.forEach(function (kb) {
          var li = el("li");
          var b = el("button", kb.name + " (" + (kb.document_count || 0) + " documents)", "link");
          b.type = "button";
          b.addEventListener("click", function () { open(kb); });
          li.appendChild(b);
          var del = el("button", "Delete " + kb.name, "danger small"); del.type = "button";
          del.addEventListener("click", function () {
            if (!window.confirm("Delete this knowledge base?")) return;
            api("DELETE", "/api/v1/knowledge-bases/" + encodeURIComponent(kb.id)).then(function () { if (current && current.id === kb.id) $("#kb-detail").hidden = true; loadList(); }, showError);
          });
          li.appendChild(del);
          ul.appendChild(li);
        });
      }, function (err) { $("#kb-list").textContent = ""; showError(err); });
    }
    function open(kb) {
      current = kb;
      $("#kb-detail").hidden = false;
      $("#kb-title").textContent = "Documents of " + kb.name;
      $("#chunk-list").textContent = ""; $("#search-results").textContent = "";
      api("GET", "/api/v1/knowledge-bases/" + encodeURIComponent(kb.id) + "/documents").then(function (body) {
        var ul = $("#doc-list"); ul.textContent = "";
        (body.data || []).forEach(function (d) { ul.appendChild(el("li", d.title + " — " + d.chunk_count + " chunks, " + d.size_bytes + " bytes")); });
        if (!(body.data || []).length) ul.appendChild(el("li", "No documents yet.", "hint"));
      }, showError);
    }
    $("#kb-create").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearError();
      api("POST", "/api/v1/knowledge-bases", formJSON(ev.target)).then(function (kb) { ev.target.reset(); loadList(); open(kb); }, showError);
    });
    $("#doc-upload").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearError();
      if (!current) return;
      var file = $("#doc-file").files[0];
      var path = "/api/v1/knowledge-bases/" + encodeURIComponent(current.id) + "/documents";
      var req;
      if (file) {
        var fd = new FormData(); fd.append("title", $("#doc-title").value); fd.append("file", file);
        req = api("POST", path, fd);
      } else {
        req = api("POST", path, { title: $("#doc-title").value, content: $("#doc-content").value });
      }
      req.then(function () { ev.target.reset(); open(current); loadList(); }, showError);
    });
    $("#kb-search").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearError();
      api("GET", "/api/v1/knowledge-bases/" + encodeURIComponent(current.id) + "/search?q=" + encodeURIComponent($("#kb-q").value)).then(function (body) {
        var ol = $("#search-results"); ol.textContent = "";
        (body.data || []).forEach(function (hit) {
          var li = el("li"); li.appendChild(el("strong", hit.title || hit.document_title || "")); li.appendChild(el("p", hit.content || hit.text || JSON.stringify(hit)));
          ol.appendChild(li);
        });
        if (!(body.data || []).length) ol.appendChild(el("li", "No passage matches.", "hint"));
      }, showError);
    });
    $("#load-chunks").addEventListener("click", function () {
      api("GET", "/api/v1/knowledge-bases/" + encodeURIComponent(current.id) + "/chunks?limit=200").then(function (body) {
        var ol = $("#chunk-list"); ol.textContent = "";
        (body.data || []).forEach(function (c) { var li = el("li"); li.appendChild(el("strong", c.title + " #" + c.position)); li.appendChild(el("p", c.content)); ol.appendChild(li); });
      }, showError);
    });
    loadList();
  };

  pages.whatsapp = function () {
    $("#webhook-url").textContent = window.location.origin + "/webhooks/whatsapp";
    function loadSenders() {
      api("GET", "/api/v1/whatsapp/senders").then(function (body) {
        var tb = $("#sender-list"); tb.textContent = "";
        (body.data || []).forEach(function (s) {
          var tr = el("tr");
          [s.display_phone_number, s.phone_number_id, s.assistant_id, s.quality_rating || "", s.last_error || ""].forEach(function (v) { tr.appendChild(el("td", v)); });
          var td = el("td"); var del = el("button", "Remove", "danger small"); del.type = "button";
          del.addEventListener("click", function () { if (window.confirm("Remove this sender?")) api("DELETE", "/api/v1/whatsapp/senders/" + encodeURIComponent(s.id)).then(loadSenders, showError); });
          td.appendChild(del); tr.appendChild(td); tb.appendChild(tr);
        });
        if (!(body.data || []).length) { var tr = el("tr"); var td = el("td", "No senders yet.", "empty"); td.colSpan = 6; tr.appendChild(td); tb.appendChild(tr); }
      }, function (err) { $("#sender-list").textContent = ""; showError(err); });
    }
    function loadTemplates() {
      api("GET", "/api/v1/whatsapp/templates").then(function (body) {
        var tb = $("#template-list"); tb.textContent = "";
        (body.data || []).forEach(function (t) {
          var tr = el("tr"); [t.name, t.language, t.category, t.status].forEach(function (v) { tr.appendChild(el("td", v)); }); tb.appendChild(tr);
        });
        if (!(body.data || []).length) { var tr = el("tr"); var td = el("td", "No templates yet.", "empty"); td.colSpan = 4; tr.appendChild(td); tb.appendChild(tr); }
      }, function (err) { $("#template-list").textContent = ""; showError(err); });
    }
    $("#sender-create").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearError();
      var body = formJSON(ev.target);
      if (!body.graph_api_url) delete body.graph_api_url;
      api("POST", "/api/v1/whatsapp/senders", body).then(function () { ev.target.reset(); loadSenders(); }, showError);
    });
    $("#template-create").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearError();
      var body = formJSON(ev.target);
      try { body.components = JSON.parse(body.components || "[]"); } catch (e) { showError(new Error("Components must be valid JSON.")); return; }
      api("POST", "/api/v1/whatsapp/templates", body).then(function () { loadTemplates(); }, showError);
    });
    loadSenders(); loadTemplates();
  };

  pages.widgets = function () {
    function show(w) {
      $("#widget-detail").hidden = false;
      $("#embed-snippet").value = w.embed_snippet || ('<script src="' + window.location.origin + '/widget.js" data-key="' + (w.public_key || "") + '" async></script>');
      $("#widget-preview").href = "/widget/demo/" + encodeURIComponent(w.id);
    }
    function load() {
      api("GET", "/api/v1/widgets").then(function (body) {
        var ul = $("#widget-list"); ul.textContent = "";
        (body.data || []).forEach(function (w) {
          var li = el("li"); var b = el("button", (w.mode || "chat") + " widget " + w.id, "link"); b.type = "button";
          b.addEventListener("click", function () { show(w); }); li.appendChild(b); ul.appendChild(li);
        });
        if (!(body.data || []).length) ul.appendChild(el("li", "No widgets yet.", "hint"));
      }, function (err) { $("#widget-list").textContent = ""; showError(err); });
    }
    $("#widget-create").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearError();
      var f = formJSON(ev.target);
      var body = { assistant_id: f.assistant_id, mode: f.mode };
      if (f.greeting) body.greeting = f.greeting;
      var origins = (f.allowed_origins || "").split(/\s+/).filter(Boolean);
      if (origins.length) body.allowed_origins = origins;
      try { body.prechat_fields = JSON.parse(f.prechat_fields || "[]"); } catch (e) { showError(new Error("Pre-chat fields must be valid JSON.")); return; }
      api("POST", "/api/v1/widgets", body).then(function (w) { show(w); load(); }, showError);
    });
    load();
  };

  pages.settings = function () {
    function loadPrices() {
      api("GET", "/api/v1/prices").then(function (body) {
        var tb = $("#price-list"); tb.textContent = "";
        (body.data || []).forEach(function (p) {
          var tr = el("tr"); tr.appendChild(el("td", p.model));
          tr.appendChild(el("td", "$" + p.input_per_million_usd, "n")); tr.appendChild(el("td", "$" + p.output_per_million_usd, "n"));
          tr.appendChild(el("td", p.default ? "default" : "custom")); tb.appendChild(tr);
        });
      }, function (err) { $("#price-list").textContent = ""; showError(err); });
    }
    function loadHooks() {
      api("GET", "/api/v1/webhooks").then(function (body) {
        var ul = $("#webhook-list"); ul.textContent = "";
        (body.data || []).forEach(function (h) {
          var li = el("li", h.url + " — " + ((h.events || []).join(", ") || "all events") + " ");
          var del = el("button", "Delete", "danger small"); del.type = "button";
          del.addEventListener("click", function () { if (window.confirm("Delete this webhook?")) api("DELETE", "/api/v1/webhooks/" + encodeURIComponent(h.id)).then(loadHooks, showError); });
          li.appendChild(del); ul.appendChild(li);
        });
        if (!(body.data || []).length) ul.appendChild(el("li", "No webhooks yet.", "hint"));
      }, function (err) { $("#webhook-list").textContent = ""; showError(err); });
    }
    $("#price-form").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearError();
      var f = formJSON(ev.target);
      api("PUT", "/api/v1/prices/" + encodeURIComponent(f.model), { input_per_million_usd: Number(f.input_per_million_usd), output_per_million_usd: Number(f.output_per_million_usd) })
        .then(function () { ev.target.reset(); loadPrices(); }, showError);
    });
    $("#webhook-form").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearError();
      var f = formJSON(ev.target);
      var events = (f.events || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      api("POST", "/api/v1/webhooks", { url: f.url, events: events }).then(function (h) {
        ev.target.reset();
        if (h.secret) { $("#webhook-secret").hidden = false; $("#wh-secret").value = h.secret; }
        loadHooks();
      }, showError);
    });
    loadPrices(); loadHooks();
  };

  document.addEventListener("DOMContentLoaded", function () {
    var fn = pages[document.body.getAttribute("data-page")];
    if (fn) fn();
  });
})();
