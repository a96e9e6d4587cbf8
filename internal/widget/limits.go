package widget

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are the public endpoints' rate limits. Visitors are anonymous, so each IP address and
// each session has its own budget; past it the answer is 429 with Retry-After.
type Limits struct {
	// PerIP bounds every /widget/v1 request of one IP address.
	PerIP      rate.Limit
	PerIPBurst int
	// SessionsPerIP bounds new sessions (conversations) started from one IP address.
	SessionsPerIP      rate.Limit
	SessionsPerIPBurst int
	// MessagesPerSession bounds the messages one visitor session sends.
	MessagesPerSession      rate.Limit
	MessagesPerSessionBurst int
}

// DefaultLimits suit a public website: a visitor types far slower than these.
var DefaultLimits = Limits{
	PerIP: 10, PerIPBurst: 60,
	SessionsPerIP: rate.Every(20 * time.Second), SessionsPerIPBurst: 10,
	MessagesPerSession: rate.Every(2 * time.Second), MessagesPerSessionBurst: 8,
}

// limiterSet keeps one token bucket per key, forgetting keys idle for a while so memory stays
// bounded however many visitors come and go.
type limiterSet struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	m         map[string]*limiterEntry
	lastSweep time.Time
}

type limiterEntry struct {
	l    *rate.Limiter
	seen time.Time
}

const limiterIdle = 10 * time.Minute

func newLimiterSet(limit rate.Limit, burst int) *limiterSet {
	if burst < 1 {
		burst = 1
	}
	return &limiterSet{limit: limit, burst: burst, m: map[string]*limiterEntry{}}
}

// allow takes one token for key; when none is left it reports how long until one is.
func (s *limiterSet) allow(key string, now time.Time) (bool, time.Duration) {
	if s == nil || s.limit <= 0 {
		return true, 0
	}
	s.mu.Lock()
	if now.Sub(s.lastSweep) > time.Minute {
		for k, e := range s.m {
			if now.Sub(e.seen) > limiterIdle {
				delete(s.m, k)
			}
		}
		s.lastSweep = now
	}
	e := s.m[key]
	if e == nil {
		e = &limiterEntry{l: rate.NewLimiter(s.limit, s.burst)}
		s.m[key] = e
	}
	e.seen = now
	s.mu.Unlock()
	r := e.l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
