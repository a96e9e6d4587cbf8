package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"sync"

	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/metrics"
)

// MetricsFields computes fields a feature adds to the metrics answer (insights' headline figures),
// for the request and its parsed filter. An error answers the request (use Errorf for 4xx).
type MetricsFields func(r *http.Request, f metrics.Filter) (map[string]any, error)

// metricsFields holds the added fields of each running Parley, keyed by its auth service like
// sessionAuths, so the API's struct stays as the foundation built it.
var metricsFields sync.Map // *auth.Service → MetricsFields

// AddMetricsFields makes the APIs built on au add fn's fields to GET /api/v1/metrics. The
// contract's fields are never replaced: an added field with the same name is dropped.
func AddMetricsFields(au *auth.Service, fn MetricsFields) { metricsFields.Store(au, fn) }

// metricsFields starts computing the added fields of the request; the result waits for them.
func (a *API) metricsFields(r *http.Request, f metrics.Filter) func() (map[string]any, error) {
	v, ok := metricsFields.Load(a.Auth)
	if !ok {
		return func() (map[string]any, error) { return nil, nil }
	}
	type result struct {
		m   map[string]any
		err error
	}
	c := make(chan result, 1)
	go func() {
		m, err := v.(MetricsFields)(r, f)
		c <- result{m, err}
	}()
	return func() (map[string]any, error) {
		res := <-c
		return res.m, res.err
	}
}

// writeMetrics writes the metrics answer with the added fields after the contract's.
func writeMetrics(w http.ResponseWriter, out MetricsJSON, added func() (map[string]any, error)) error {
	extra, err := added()
	if err != nil {
		return err
	}
	if len(extra) == 0 {
		WriteJSON(w, http.StatusOK, out)
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return err
	}
	var taken map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &taken); err != nil {
		return err
	}
	names := make([]string, 0, len(extra))
	for k := range extra {
		if _, ok := taken[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	body := bytes.TrimRight(buf.Bytes(), "\n")
	body = body[:len(body)-1] // the closing brace
	for _, k := range names {
		var field bytes.Buffer
		fe := json.NewEncoder(&field)
		fe.SetEscapeHTML(false)
		if err := fe.Encode(map[string]any{k: extra[k]}); err != nil {
			return err
		}
		f := bytes.TrimRight(field.Bytes(), "\n")
		body = append(append(body, ','), f[1:len(f)-1]...)
	}
	body = append(body, '}', '\n')
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}
