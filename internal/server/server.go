// Package server composes Parley's HTTP surface: health, readiness, Prometheus metrics, the API and,
// as they land, the channels and the dashboard.
package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pinger reports whether the database answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Mount is one part of the surface: a pattern and its handler.
type Mount struct {
	Pattern string
	Handler http.Handler
}

// New returns the root handler.
func New(db Pinger, reg *prometheus.Registry, mounts ...Mount) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := db.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("database unavailable"))
			return
		}
		_, _ = w.Write([]byte("ready"))
	})
	var metricsPage http.Handler
	for _, m := range mounts {
		if m.Pattern == "GET /metrics" { // the dashboard's metrics page shares the path with Prometheus
			metricsPage = m.Handler
			continue
		}
		mux.Handle(m.Pattern, m.Handler)
	}
	mux.Handle("GET /metrics", metricsHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), metricsPage))
	return instrument(reg, securityHeaders(limitInFlight(DefaultMaxInFlight, mux)))
}

// metricsHandler serves Prometheus at /metrics, and the dashboard's page (when mounted as
// "GET /metrics") to browsers, which ask for HTML; scrapers never do.
func metricsHandler(prom, page http.Handler) http.Handler {
	if page == nil {
		return prom
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept"), "text/html") {
			page.ServeHTTP(w, r)
			return
		}
		prom.ServeHTTP(w, r)
	})
}

// DefaultMaxInFlight bounds the requests served at once. Past it Parley answers 503 with
// Retry-After at once instead of queueing without limit: memory stays bounded under overload and
// clients (Meta retries webhooks) come back later.
const DefaultMaxInFlight = 1024

// limitInFlight sheds load past max concurrent requests. Health checks and long-lived event
// streams are not counted: they must keep working under load and would otherwise hold slots.
func limitInFlight(max int, next http.Handler) http.Handler {
	slots := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exemptFromLimit(r) {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"overloaded","message":"the server is at capacity; retry shortly"}}` + "\n"))
		}
	})
}

func exemptFromLimit(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/event-stream") ||
		strings.HasSuffix(r.URL.Path, "/events")
}

// NewRegistry returns a Prometheus registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func instrument(reg *prometheus.Registry, next http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_http_requests_total", Help: "HTTP requests by route and status."}, []string{"route", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_http_request_duration_seconds", Help: "HTTP request duration by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}}, []string{"route"})
	reg.MustRegister(requests, duration)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &StatusWriter{ResponseWriter: w, Code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		requests.WithLabelValues(route, strconv.Itoa(sw.Code)).Inc()
		duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// StatusWriter remembers the status a handler wrote (for metrics and the audit log), and still
// flushes streams.
type StatusWriter struct {
	http.ResponseWriter
	Code int
}

func (s *StatusWriter) WriteHeader(code int) {
	s.Code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *StatusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		next.ServeHTTP(w, r)
	})
}

// HTTPServer returns an http.Server with timeouts that keep slow clients from holding connections.
// There is no write timeout: exports and event streams are long by design.
func HTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
