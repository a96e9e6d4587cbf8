package whatsapp

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts the channel's traffic for /metrics.
type Metrics struct {
	Deliveries *prometheus.CounterVec // webhook deliveries by result
	Inbound    prometheus.Counter     // new inbound messages stored
	Statuses   *prometheus.CounterVec // status reports applied, by status
	Sends      *prometheus.CounterVec // Graph API sends by result class
}

// NewMetrics registers the channel's counters.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_whatsapp_webhook_deliveries_total", Help: "WhatsApp webhook deliveries by result."}, []string{"result"}),
		Inbound:    prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_whatsapp_inbound_messages_total", Help: "New inbound WhatsApp messages stored (replays not counted)."}),
		Statuses:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_whatsapp_statuses_total", Help: "WhatsApp status reports applied, by status."}, []string{"status"}),
		Sends:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_whatsapp_sends_total", Help: "Graph API sends by result."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Deliveries, m.Inbound, m.Statuses, m.Sends)
	}
	return m
}

func (s *Service) metrics() *Metrics {
	if s.Metrics == nil {
		s.metricsOnce.Do(func() { s.fallback = NewMetrics(nil) })
		return s.fallback
	}
	return s.Metrics
}
