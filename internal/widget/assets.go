package widget

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// Script is the embeddable widget, written for Parley: one dependency-free file.
//
//go:embed assets/widget.js
var Script []byte

// ScriptBudget is the most the script may weigh gzipped (a test keeps it within).
const ScriptBudget = 12 * 1024

var (
	scriptGzip []byte
	scriptETag string
)

func init() {
	sum := sha256.Sum256(Script)
	scriptETag = `"` + hex.EncodeToString(sum[:10]) + `"`
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(Script)
	_ = zw.Close()
	scriptGzip = buf.Bytes()
}

// GzipSize is the script's size as served to browsers that accept gzip.
func GzipSize() int { return len(scriptGzip) }

// ScriptETag is the script's current ETag.
func ScriptETag() string { return scriptETag }

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// serveScript serves /widget.js: cacheable for a few minutes, then revalidated by ETag (the
// snippet's URL never changes, so a long max-age would keep old versions around).
func serveScript(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("ETag", scriptETag)
	h.Set("Cache-Control", "public, max-age=300, must-revalidate")
	h.Set("Vary", "Accept-Encoding")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Access-Control-Allow-Origin", "*")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, scriptETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	body := Script
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = scriptGzip
	}
	_, _ = w.Write(body)
}

func acceptsGzip(ae string) bool {
	for _, p := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(p), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			q, err := strconv.ParseFloat(v, 64)
			return err != nil || q > 0
		}
		return true
	}
	return false
}

var demoPage = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — widget demo</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#1f2937}code,pre{background:#f3f4f6;border-radius:4px}pre{padding:1rem;overflow:auto;white-space:pre-wrap;word-break:break-all}</style>
</head>
<body>
<main>
<h1>Widget demo: {{.Title}}</h1>
<p>This page embeds the widget exactly as a website would. Open the chat bubble in the corner to talk to the assistant.</p>
<p>Mode: <strong>{{.Mode}}</strong>. To put it on your own site, paste this before <code>&lt;/body&gt;</code> and add the site's origin to the widget's allowed origins:</p>
<pre>{{.Snippet}}</pre>
</main>
<script src="{{.ScriptURL}}" data-key="{{.Key}}" async></script>
</body>
</html>
`))

// Snippet is the HTML a business pastes into its pages.
func Snippet(origin, publicKey string) string {
	return `<script src="` + origin + `/widget.js" data-key="` + publicKey + `" async></script>`
}

// demo serves a page of Parley's own origin (always allowed) with the widget embedded.
func (s *Service) demo(w http.ResponseWriter, r *http.Request) {
	wd, err := s.Repo.WidgetByID(r.Context(), r.PathValue("id"))
	if err != nil {
		status, msg := http.StatusNotFound, "No widget has this id."
		if !errors.Is(err, ErrNotFound) {
			s.Log.ErrorContext(r.Context(), "widget: demo", "err", err)
			status, msg = http.StatusInternalServerError, "Something went wrong on our side; it has been logged."
		}
		http.Error(w, msg, status)
		return
	}
	self := SelfOrigin(r)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	_ = demoPage.Execute(w, map[string]string{"Title": wd.Title, "Mode": wd.Mode, "Snippet": Snippet(self, wd.PublicKey), "ScriptURL": self + "/widget.js", "Key": wd.PublicKey})
}
