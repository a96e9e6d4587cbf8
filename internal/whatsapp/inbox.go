package whatsapp

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bursts. A delivery is processed before its 200 while the channel keeps up. When more than the
// inline limit are being processed at once, or kept deliveries still wait, a verified delivery is
// kept as it came (one row, durable before the 200) and the drainer processes the kept ones in
// arrival order. Meta wants its 200 within seconds and sends again otherwise, so during a burst
// (a broadcast's replies, Meta catching up after an outage) the 200 goes out at the speed of one
// small insert, and the messages, answers and sends follow as fast as the machine allows.

// InboxItem is a kept delivery: its body as signed, and the phone numbers whose sender's app
// secret verified it.
type InboxItem struct {
	ID             int64
	PhoneNumberIDs []string
	Body           []byte
	ReceivedAt     time.Time
}

// InboxRepository keeps deliveries for later processing (the store implements it).
type InboxRepository interface {
	AddWAInbox(ctx context.Context, phoneNumberIDs []string, body []byte, at time.Time) error
	CountWAInbox(ctx context.Context) (int64, error)
	TakeWAInbox(ctx context.Context, process func([]InboxItem) ([]int64, error)) (int, error)
}

// DefaultInlineLimit is how many deliveries are processed before their 200 at once; past it the
// channel is not keeping up and deliveries are kept for the drainer.
func DefaultInlineLimit() int { return 2 * runtime.GOMAXPROCS(0) }

// inbox is the burst state of a Service.
type inbox struct {
	limit  atomic.Int64 // 0: DefaultInlineLimit; < 0: always keep (tests of the drainer)
	inline atomic.Int64 // deliveries being processed by their handlers now
	// lastKept is when a delivery was last kept (unix nanoseconds).
	lastKept atomic.Int64
	// heldSince is when the drainer began holding off for the burst now waiting (unix
	// nanoseconds; 0: not holding); restUntil is until when it rests after its last take during a
	// burst. Only the drainer goroutine touches them.
	heldSince int64
	restUntil int64
	waiting   atomic.Int64 // kept deliveries not processed yet, as far as this process knows

	once     sync.Once
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	start    sync.Once
	stopOnce sync.Once
	running  atomic.Bool
}

func (b *inbox) init() {
	b.once.Do(func() {
		b.kick = make(chan struct{}, 1)
		b.stop = make(chan struct{})
		b.done = make(chan struct{})
	})
}

// SetInlineLimit sets how many deliveries may be processed before their 200 at once (0: the
// default; negative: none, every delivery is kept and drained).
func (s *Service) SetInlineLimit(n int) { s.box.limit.Store(int64(n)) }

// Waiting returns how many kept deliveries wait to be processed, as far as this process knows
// (without asking the database). While any wait, new deliveries are kept behind them, so that a
// customer's messages are processed in the order they came.
func (s *Service) Waiting() int64 { return s.box.waiting.Load() }

// keepForLater reports whether a delivery should be kept rather than processed now.
func (s *Service) keepForLater() bool {
	if s.Inbox == nil {
		return false
	}
	limit := s.box.limit.Load()
	if limit == 0 {
		limit = int64(DefaultInlineLimit())
	}
	return limit < 0 || s.box.waiting.Load() > 0 || s.box.inline.Load() >= limit
}

// keep stores a verified delivery for the drainer.
func (s *Service) keep(ctx context.Context, body []byte, senders map[string]*Sender) error {
	phones := make([]string, 0, len(senders))
	for id := range senders {
		phones = append(phones, id)
	}
	slices.Sort(phones)
	s.box.waiting.Add(1)
	s.box.lastKept.Store(time.Now().UnixNano())
	if err := s.Inbox.AddWAInbox(ctx, phones, body, s.now()); err != nil {
		s.box.waiting.Add(-1)
		return err
	}
	s.box.init()
	select {
	case s.box.kick <- struct{}{}:
	default:
	}
	return nil
}

// StartDrainer processes kept deliveries in the background until StopDrainer: those left by a
// previous run at once, new ones as they are kept, and (on PostgreSQL) other instances' every second.
func (s *Service) StartDrainer(ctx context.Context) error {
	if s.Inbox == nil {
		return nil
	}
	s.box.init()
	n, err := s.Inbox.CountWAInbox(ctx)
	if err != nil {
		return err
	}
	s.box.waiting.Store(n)
	s.box.start.Do(func() {
		s.box.running.Store(true)
		go s.drain()
	})
	return nil
}

// StopDrainer stops the drainer after the batch it is working on (bounded by ctx): what is left
// stays kept for the next start.
func (s *Service) StopDrainer(ctx context.Context) error {
	if s.Inbox == nil {
		return nil
	}
	s.box.init()
	s.box.start.Do(func() {}) // a drainer not started by now never starts
	s.box.stopOnce.Do(func() { close(s.box.stop) })
	if !s.box.running.Load() {
		return nil
	}
	select {
	case <-s.box.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) drain() {
	defer close(s.box.done)
	ctx := context.Background()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for {
			select {
			case <-s.box.stop:
				return
			default:
			}
			if wait := s.holdFor(time.Now()); wait > 0 {
				select {
				case <-s.box.stop:
					return
				case <-time.After(wait):
				}
				continue
			}
			before := s.box.waiting.Load()
			start := time.Now()
			n, err := s.Inbox.TakeWAInbox(ctx, func(items []InboxItem) ([]int64, error) { return s.processKept(ctx, items) })
			if n > 0 {
				if s.box.waiting.Add(-int64(n)) < 0 {
					s.box.waiting.Store(0)
				}
				s.metrics().Deliveries.WithLabelValues("drained").Add(float64(n))
			}
			s.tookFrom(start, time.Now(), before, s.box.waiting.Load())
			if err != nil {
				s.log().Error("whatsapp: kept deliveries not processed yet", "err", err)
				break // the next tick tries again
			}
			if n == 0 {
				// Nothing left (that this instance may take): new deliveries go inline again,
				// unless one was kept meanwhile; the next burst gets its own grace.
				s.box.waiting.CompareAndSwap(before, 0)
				s.box.heldSince = 0
				break
			}
		}
		select {
		case <-s.box.stop:
			return
		case <-s.box.kick:
		case <-tick.C:
		}
	}
}

// drainLanes is how many customers' deliveries are processed at once: their writes share group
// commits, while each customer's deliveries stay in order within one lane. 64 rather than 16: a
// burst was stored in 48 s rather than 63 s (150k deliveries, 10M messages), the commits shared by
// more deliveries.
const drainLanes = 64

// Acknowledgements first. While deliveries are still being kept (the burst goes on), the drainer
// holds off, leaving the whole machine to the acknowledgements, for at most burstGrace from when it
// began holding; from then until the burst is over it drains a take at a time, resting burstRest
// times as long as each take took while deliveries are kept faster than it drains them, and once
// the burst is over it drains with all its lanes until nothing is left. Holding and resting cost
// no throughput: the drain is what limits how fast a burst is stored, and a CPU-second it spends
// during the burst is one the acknowledgements lack
// (measured at 10M messages: ~1,950 msg/s end to end either way, while acknowledgements went from
// 15.0k to 18.5k msg/s with the drain resting after the grace, 20–22k with it held throughout).
// The grace bounds how long the first answers wait; the rest keeps them coming during a long burst.
const (
	burstGrace = 5 * time.Second
	burstQuiet = 250 * time.Millisecond // no delivery kept for this long: the burst is over
	holdStep   = 50 * time.Millisecond  // how often a holding drainer looks again
	burstRest  = 3                      // outpaced past the grace, the drain works a quarter of the time
)

// holdFor returns how long the drainer should wait before taking kept deliveries (0: take now).
func (s *Service) holdFor(now time.Time) time.Duration {
	last := time.Unix(0, s.box.lastKept.Load())
	quietIn := burstQuiet - now.Sub(last)
	if quietIn <= 0 {
		return 0
	}
	if s.box.heldSince == 0 {
		s.box.heldSince = now.UnixNano()
	}
	left := max(burstGrace-now.Sub(time.Unix(0, s.box.heldSince)), time.Unix(0, s.box.restUntil).Sub(now))
	if left <= 0 {
		return 0
	}
	return min(left, holdStep, quietIn)
}

// tookFrom notes a take that began at start with waitingBefore deliveries kept and ended at end
// with waitingAfter. While more were kept during the take than it processed, the acknowledgements
// outpace the drain and compete with it for the CPU: the drainer rests burstRest times as long as
// the take took before the next (holdFor). While the drain keeps up, it does not rest, so a steady
// flow it can handle never waits behind rests.
func (s *Service) tookFrom(start, end time.Time, waitingBefore, waitingAfter int64) {
	if waitingAfter > waitingBefore {
		s.box.restUntil = end.Add(burstRest * end.Sub(start)).UnixNano()
	} else {
		s.box.restUntil = 0
	}
}

// processKept processes kept deliveries and returns the ids of those done. Deliveries about one
// customer are processed in arrival order, different customers' at the same time; a delivery
// about several customers (or none) is processed alone, after those before it and before those
// after it. A delivery that can no longer be processed (unreadable, senders deleted) is done; a
// store failure stops its customer's lane, leaving the rest of that customer's for the next take.
func (s *Service) processKept(ctx context.Context, items []InboxItem) ([]int64, error) {
	var (
		mu       sync.Mutex
		done     []int64
		firstErr error
	)
	one := func(it InboxItem, p *Payload) bool {
		err := s.processOne(ctx, it, p)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return false
		}
		done = append(done, it.ID)
		return true
	}
	type job struct {
		it InboxItem
		p  *Payload
	}
	lanes := map[string][]job{}
	var order []string
	flush := func() {
		sem := make(chan struct{}, drainLanes)
		var wg sync.WaitGroup
		for _, key := range order {
			sem <- struct{}{}
			wg.Add(1)
			go func(jobs []job) {
				defer func() { <-sem; wg.Done() }()
				for _, j := range jobs {
					if !one(j.it, j.p) {
						return
					}
				}
			}(lanes[key])
		}
		wg.Wait()
		clear(lanes)
		order = order[:0]
	}
	for _, it := range items {
		p, err := Parse(it.Body)
		// Only its JSON and addresses were read before it was kept (Addressed): a signed delivery
		// with fields of unexpected types ends here, logged; Meta's retries of a 400 would not have
		// made it readable either.
		if err != nil {
			s.log().Error("whatsapp: kept delivery unreadable, dropped", "id", it.ID, "err", err)
			mu.Lock()
			done = append(done, it.ID)
			mu.Unlock()
			continue
		}
		key, single := p.customer()
		if !single {
			flush()
			one(it, p)
			continue
		}
		if _, ok := lanes[key]; !ok {
			order = append(order, key)
		}
		lanes[key] = append(lanes[key], job{it, p})
	}
	flush()
	return done, firstErr
}

// processOne stores what one kept delivery carries.
func (s *Service) processOne(ctx context.Context, it InboxItem, p *Payload) error {
	senders, err := s.sendersByPhone(ctx, it.PhoneNumberIDs)
	if err != nil {
		return err
	}
	_, err = s.Receive(ctx, p, senders)
	return err
}

// sendersByPhone returns the senders of these phone number ids, secrets opened, by phone number id.
func (s *Service) sendersByPhone(ctx context.Context, phoneNumberIDs []string) (map[string]*Sender, error) {
	list, err := s.cachedSenders(ctx, phoneNumberIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*Sender, len(list))
	for _, x := range list {
		out[x.PhoneNumberID] = x
	}
	return out, nil
}

// senderCacheTTL is how long opened senders are reused. Changes made through this process are
// seen at once (ForgetSenders); another instance's change within this time.
const senderCacheTTL = time.Second

type senderCacheEntry struct {
	senders []*Sender
	at      time.Time
}

// cachedSenders returns the senders of the phone number ids with their secrets opened; senders
// whose secrets cannot be opened are left out (and logged). The result is shared: do not modify.
func (s *Service) cachedSenders(ctx context.Context, phoneNumberIDs []string) ([]*Sender, error) {
	key := strings.Join(phoneNumberIDs, ",")
	gen := s.senderGen.Load()
	if v, ok := s.senderCache.Load(key); ok {
		e := v.(*senderCacheEntry)
		if time.Since(e.at) < senderCacheTTL {
			return e.senders, nil
		}
	}
	list, err := s.Repo.WASendersByPhone(ctx, phoneNumberIDs)
	if err != nil {
		return nil, err
	}
	opened := s.openAll(list)
	// Not cached if senders changed while this lookup ran: it may hold the old ones.
	if s.senderGen.Load() == gen {
		s.senderCache.Store(key, &senderCacheEntry{senders: opened, at: time.Now()})
	}
	return opened, nil
}

// allSendersOpened returns every sender (of every workspace) with its secrets opened.
func (s *Service) allSendersOpened(ctx context.Context) ([]*Sender, error) {
	list, err := s.Repo.AllWASenders(ctx)
	if err != nil {
		return nil, err
	}
	return s.openAll(list), nil
}

// openAll opens the senders' secrets in place, leaving out (and logging) those it cannot open.
func (s *Service) openAll(list []*Sender) []*Sender {
	opened := list[:0]
	for _, x := range list {
		if err := s.open(x); err != nil {
			s.log().Error("whatsapp: sender secrets unreadable", "sender", x.ID, "err", err)
			continue
		}
		opened = append(opened, x)
	}
	return opened
}

// ForgetSenders drops the opened senders kept for deliveries: call it after a sender changes.
func (s *Service) ForgetSenders() {
	s.senderGen.Add(1)
	s.senderCache.Clear()
}
