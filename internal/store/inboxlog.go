package store

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-hq/parley/internal/whatsapp"
)

// InboxLog keeps the WhatsApp deliveries acknowledged during a burst on SQLite deployments: an
// append-only log of segment files in a directory beside the database (parley.db →
// parley-inbox/). A burst's acknowledgements wait for this and nothing else, so it is as cheap as
// a durable keep can be: one goroutine writes every delivery waiting at that moment with one
// write(2) and then answers them all, where a database insert and commit cost several times as
// much CPU and made each client wait out a group commit.
//
// Durability is like the main database's (WAL, synchronous=NORMAL): a write is in the kernel
// before its 200, so a crash or SIGKILL of the process loses nothing; a power cut may lose the
// last moments, as it may lose the database's last commits (and, neither being synced, the
// checkpoint may then have outlived the commits of deliveries it counts as done). A record torn
// by such a cut is recognised by its checksum and cut off.
//
// The drainer (one per process; the lock file keeps a second process out) reads records in order.
// Which deliveries are done is kept as a checkpoint, the lowest id not yet done, written after
// each take; segments wholly below it are deleted. After a crash the deliveries between the
// checkpoint and those last done are processed again, which stores nothing twice (messages are
// keyed by Meta's ids, statuses only move forward), as with Meta's own retries.
type InboxLog struct {
	dir    string
	legacy string // the inbox database of versions before the log, imported at open
	log    *slog.Logger

	openOnce sync.Once
	openErr  error
	sendMu   sync.RWMutex // held to send on appends (read) and to close it (write)
	lock     *os.File
	appends  chan *inboxAppend
	rotate   chan struct{} // the drainer finished everything written: start a new segment
	wdone    chan struct{}
	closed   atomic.Bool
	waiting  atomic.Int64 // records not done yet

	// writer state: only the writer goroutine touches these after open.
	w      *os.File
	wseg   *inboxSegment
	nextID int64

	mu   sync.Mutex      // guards segs and each segment's size
	segs []*inboxSegment // oldest first; the last is the one written to

	// reader state: only TakeWAInbox (under takeMu) touches these.
	takeMu     sync.Mutex
	checkpoint int64         // the lowest id not done
	cpFile     *os.File      // where the checkpoint is kept
	rseg       int           // index in segs of the segment being read
	roff       int64         // offset in it of the next record
	pending    []inboxRecord // read, not done: offered first on the next take
}

type inboxSegment struct {
	first int64 // no record in it has a lower id; its file's name
	path  string
	size  int64    // bytes written and acknowledged
	r     *os.File // read handle (the reader's)
}

type inboxRecord = whatsapp.InboxItem

type inboxAppend struct {
	phones string
	body   []byte
	at     int64
	errc   chan error
}

const (
	inboxSegmentBytes = 64 << 20 // a new segment past this size, so that drained ones can go
	inboxHeaderBytes  = 8        // payload length, CRC-32C of the payload
	inboxFixedBytes   = 18       // id, received at (unix ms), length of the phone number ids
	maxInboxAppends   = 1024     // deliveries written at most with one write(2)
	maxInboxRecord    = inboxFixedBytes + 1<<16 + whatsapp.MaxDeliveryBytes
	// inboxRotateBytes: once everything in a segment this large is done, the writer starts a new
	// one, so the finished one can go (and a restart need not read it).
	inboxRotateBytes = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// NewInboxLog returns the inbox of the SQLite database at dbPath: the directory
// parley-inbox.log beside parley.db. Nothing is opened until it is first used, so a command that
// opens the application beside a running server (parley token create) does not contend for the
// inbox, which only the server uses.
func NewInboxLog(dbPath string, log *slog.Logger) *InboxLog {
	if log == nil {
		log = slog.Default()
	}
	base := strings.TrimSuffix(dbPath, filepath.Ext(dbPath))
	// Versions before the log kept deliveries in a SQLite database of their own (parley-inbox.db).
	return &InboxLog{dir: base + "-inbox.log", legacy: base + "-inbox" + filepath.Ext(dbPath), log: log}
}

func (l *InboxLog) ensureOpen() error {
	l.openOnce.Do(func() { l.openErr = l.open() })
	if l.openErr != nil {
		return fmt.Errorf("whatsapp inbox %s: %w", l.dir, l.openErr)
	}
	if l.closed.Load() {
		return errors.New("whatsapp inbox closed")
	}
	return nil
}

func (l *InboxLog) open() error {
	if err := os.MkdirAll(l.dir, 0o750); err != nil {
		return err
	}
	lock, err := lockFile(filepath.Join(l.dir, "LOCK"))
	if err != nil {
		return err
	}
	l.lock = lock
	ok := false
	defer func() {
		if !ok {
			l.closeFiles()
		}
	}()
	if l.cpFile, err = os.OpenFile(filepath.Join(l.dir, "checkpoint"), os.O_RDWR|os.O_CREATE, 0o640); err != nil {
		return err
	}
	var cp [12]byte
	if n, _ := l.cpFile.ReadAt(cp[:], 0); n == len(cp) && crc32.Checksum(cp[:8], crcTable) == binary.LittleEndian.Uint32(cp[8:]) {
		l.checkpoint = int64(binary.LittleEndian.Uint64(cp[:8]))
	}
	if err := l.scan(); err != nil {
		return err
	}
	if err := l.importLegacy(); err != nil {
		return err
	}
	if err := l.startSegment(l.nextID); err != nil {
		return err
	}
	l.appends = make(chan *inboxAppend, maxInboxAppends)
	l.rotate = make(chan struct{}, 1)
	l.wdone = make(chan struct{})
	go l.writer()
	ok = true
	return nil
}

// scan reads the segments left by earlier runs: counts the records not done, finds the next id,
// cuts off a torn tail and deletes segments wholly done.
func (l *InboxLog) scan() error {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name, found := strings.CutSuffix(e.Name(), ".log")
		if !found {
			continue
		}
		first, err := strconv.ParseInt(name, 16, 64)
		if err != nil {
			continue
		}
		l.segs = append(l.segs, &inboxSegment{first: first, path: filepath.Join(l.dir, e.Name())})
	}
	slices.SortFunc(l.segs, func(a, b *inboxSegment) int { return cmp.Compare(a.first, b.first) })
	l.nextID = max(l.checkpoint, 1)
	kept := l.segs[:0]
	for _, seg := range l.segs {
		l.nextID = max(l.nextID, seg.first)
		off, live, err := l.scanSegment(seg)
		if err != nil {
			return err
		}
		seg.size = off
		if live == 0 { // all done, or nothing written to it: this run writes a segment of its own
			if err := os.Remove(seg.path); err != nil {
				return err
			}
			continue
		}
		if st, err := os.Stat(seg.path); err == nil && st.Size() > off {
			if err := os.Truncate(seg.path, off); err != nil {
				return err
			}
		}
		l.waiting.Add(live)
		kept = append(kept, seg)
	}
	l.segs = kept
	l.dropDone()
	return nil
}

// scanSegment reads a segment's records in order and returns where the last good one ends and how
// many of them are not done.
// Those below the checkpoint were processed already: their headers are enough (a segment of a
// long burst is read in milliseconds); the rest are read whole and checked, and counted.
func (l *InboxLog) scanSegment(seg *inboxSegment) (end, live int64, err error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	br := bufio.NewReaderSize(f, 256<<10)
	var off int64
	var payload []byte
	for {
		head, err := br.Peek(inboxHeaderBytes + 8)
		if len(head) == 0 && errors.Is(err, io.EOF) {
			return off, live, nil
		}
		torn := func(why string) (int64, int64, error) {
			l.log.Warn("whatsapp inbox: torn record cut off (written by a crash, never acknowledged)", "segment", seg.path, "offset", off, "why", why)
			return off, live, nil
		}
		if len(head) < inboxHeaderBytes+8 {
			return torn("header cut short")
		}
		size := int64(binary.LittleEndian.Uint32(head[:4]))
		id := int64(binary.LittleEndian.Uint64(head[inboxHeaderBytes:]))
		if size < inboxFixedBytes || size > maxInboxRecord || off+inboxHeaderBytes+size > st.Size() {
			return torn(fmt.Sprintf("record of %d bytes", size))
		}
		if id < l.checkpoint {
			if _, err := br.Discard(int(inboxHeaderBytes + size)); err != nil {
				return 0, 0, err
			}
		} else {
			var hdr [inboxHeaderBytes]byte
			copy(hdr[:], head)
			payload = slices.Grow(payload[:0], int(size))[:size]
			if _, err := br.Discard(inboxHeaderBytes); err != nil {
				return 0, 0, err
			}
			if _, err := io.ReadFull(br, payload); err != nil {
				return torn(err.Error())
			}
			if _, err := decodeInboxRecord(hdr, payload); err != nil {
				return torn(err.Error())
			}
			live++
		}
		l.nextID = max(l.nextID, id+1)
		off += inboxHeaderBytes + size
	}
}

// importLegacy moves the deliveries kept by a version before the log (a SQLite database of their
// own) into a segment, synced, and then removes that database; if the process dies in between,
// they are imported again and processed twice, which stores nothing twice.
func (l *InboxLog) importLegacy() error {
	path := l.legacy
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	defer db.Close()
	var buf []byte
	first, n := l.nextID, 0
	rows, err := db.Query(`SELECT phone_number_ids, body, received_at FROM wa_inbox ORDER BY id`)
	if err != nil && !strings.Contains(err.Error(), "no such table") {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if err == nil {
		defer rows.Close()
		for rows.Next() {
			var phones string
			var body []byte
			var at int64
			if err := rows.Scan(&phones, &body, &at); err != nil {
				return fmt.Errorf("import %s: %w", path, err)
			}
			buf = appendInboxRecord(buf, l.nextID, at, phones, body)
			l.nextID++
			n++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
	}
	if n > 0 {
		seg := &inboxSegment{first: first, path: l.segmentPath(first), size: int64(len(buf))}
		if err := writeSynced(seg.path, buf); err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		syncDir(l.dir)
		l.segs = append(l.segs, seg)
		l.waiting.Add(int64(n))
		l.log.Info("whatsapp inbox: kept deliveries moved from the old inbox database", "deliveries", n, "from", path)
	}
	db.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", path+suffix, err)
		}
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (l *InboxLog) segmentPath(first int64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%016x.log", first))
}

// startSegment makes a new segment, whose records start at first, the one written to.
func (l *InboxLog) startSegment(first int64) error {
	seg := &inboxSegment{first: first, path: l.segmentPath(first)}
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	syncDir(l.dir)
	old := l.w
	l.w, l.wseg = f, seg
	l.mu.Lock()
	l.segs = append(l.segs, seg)
	l.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// AddWAInbox keeps a verified WhatsApp delivery, as it came, to be processed after its 200.
func (l *InboxLog) AddWAInbox(ctx context.Context, phoneNumberIDs []string, body []byte, at time.Time) error {
	if err := l.ensureOpen(); err != nil {
		return err
	}
	phones := strings.Join(phoneNumberIDs, ",")
	if len(phones) > 0xFFFF || inboxFixedBytes+len(phones)+len(body) > maxInboxRecord {
		return fmt.Errorf("keep whatsapp delivery: %d bytes with %d of phone number ids: too large to keep", len(body), len(phones))
	}
	req := &inboxAppend{phones: phones, body: body, at: ms(at), errc: make(chan error, 1)}
	l.sendMu.RLock()
	if l.closed.Load() {
		l.sendMu.RUnlock()
		return errors.New("keep whatsapp delivery: the inbox is closed")
	}
	select {
	case l.appends <- req:
		l.sendMu.RUnlock()
	case <-ctx.Done():
		l.sendMu.RUnlock()
		return ctx.Err()
	}
	// Wait even if ctx ends: once written the delivery is kept, and must not be reported as not.
	if err := <-req.errc; err != nil {
		return fmt.Errorf("keep whatsapp delivery: %w", err)
	}
	return nil
}

// writer writes every delivery waiting to be kept with one write(2), then answers them.
func (l *InboxLog) writer() {
	defer close(l.wdone)
	batch := make([]*inboxAppend, 0, maxInboxAppends)
	var buf []byte
	for {
		var first *inboxAppend
		select {
		case r, ok := <-l.appends:
			if !ok {
				return
			}
			first = r
		case <-l.rotate:
			if l.wseg.size >= inboxRotateBytes {
				if err := l.startSegment(l.nextID); err != nil {
					l.log.Warn("whatsapp inbox: new segment not started", "err", err)
				}
			}
			continue
		}
		batch = gather(append(batch[:0], first), l.appends, maxInboxAppends)
		err := l.writeBatch(batch, buf[:0])
		for _, r := range batch {
			r.errc <- err
		}
	}
}

func (l *InboxLog) writeBatch(batch []*inboxAppend, buf []byte) error {
	id := l.nextID
	for _, r := range batch {
		buf = appendInboxRecord(buf, id, r.at, r.phones, r.body)
		id++
	}
	if l.wseg.size > 0 && l.wseg.size+int64(len(buf)) > inboxSegmentBytes {
		if err := l.startSegment(l.nextID); err != nil {
			return fmt.Errorf("start segment: %w", err)
		}
	}
	// At the acknowledged size, not appended: whatever part of a failed write landed is written
	// over by the next (or cut off as a torn tail at the next start); none of it was acknowledged.
	if _, err := l.w.WriteAt(buf, l.wseg.size); err != nil {
		return err
	}
	l.nextID = id
	l.waiting.Add(int64(len(batch)))
	l.mu.Lock()
	l.wseg.size += int64(len(buf))
	l.mu.Unlock()
	return nil
}

// appendInboxRecord appends one record: its header (payload length, CRC-32C of the payload) and
// payload (id, received at, phone number ids' length, phone number ids, body).
func appendInboxRecord(buf []byte, id, at int64, phones string, body []byte) []byte {
	n := inboxFixedBytes + len(phones) + len(body)
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(n))
	buf = binary.LittleEndian.AppendUint32(buf, 0)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(id))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(at))
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(phones)))
	buf = append(buf, phones...)
	buf = append(buf, body...)
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+inboxHeaderBytes:], crcTable))
	return buf
}

// readInboxRecord reads the record at off and returns it with its length in the file. Of a record
// whose id is below skipBelow (done already) only the id is read and returned.
func readInboxRecord(f *os.File, off, skipBelow int64) (inboxRecord, int64, error) {
	var head [inboxHeaderBytes + 8]byte
	if n, err := f.ReadAt(head[:], off); n < len(head) {
		return inboxRecord{}, 0, fmt.Errorf("header cut short: %w", err)
	}
	size := int64(binary.LittleEndian.Uint32(head[:4]))
	if size < inboxFixedBytes || size > maxInboxRecord {
		return inboxRecord{}, 0, fmt.Errorf("bad record length %d", size)
	}
	if id := int64(binary.LittleEndian.Uint64(head[inboxHeaderBytes:])); id < skipBelow {
		return inboxRecord{ID: id}, inboxHeaderBytes + size, nil
	}
	hdr := [inboxHeaderBytes]byte(head[:inboxHeaderBytes])
	payload := make([]byte, size)
	if n, err := f.ReadAt(payload, off+inboxHeaderBytes); int64(n) < size {
		return inboxRecord{}, 0, fmt.Errorf("record cut short: %w", err)
	}
	rec, err := decodeInboxRecord(hdr, payload)
	return rec, inboxHeaderBytes + size, err
}

// errInboxChecksum: a record's payload does not match its checksum.
var errInboxChecksum = errors.New("checksum mismatch")

// decodeInboxRecord checks a record's payload against its header and decodes it; the record
// keeps payload.
func decodeInboxRecord(hdr [inboxHeaderBytes]byte, payload []byte) (inboxRecord, error) {
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
		return inboxRecord{}, errInboxChecksum
	}
	phonesLen := int(binary.LittleEndian.Uint16(payload[16:18]))
	if inboxFixedBytes+phonesLen > len(payload) {
		return inboxRecord{}, errors.New("bad phone number ids length")
	}
	rec := inboxRecord{
		ID:         int64(binary.LittleEndian.Uint64(payload[0:8])),
		ReceivedAt: fromMS(int64(binary.LittleEndian.Uint64(payload[8:16]))),
		Body:       payload[inboxFixedBytes+phonesLen:],
	}
	if phones := string(payload[inboxFixedBytes : inboxFixedBytes+phonesLen]); phones != "" {
		rec.PhoneNumberIDs = strings.Split(phones, ",")
	}
	return rec, nil
}

// CountWAInbox returns how many kept deliveries wait to be processed.
func (l *InboxLog) CountWAInbox(ctx context.Context) (int64, error) {
	if err := l.ensureOpen(); err != nil {
		return 0, err
	}
	return l.waiting.Load(), nil
}

// TakeWAInbox hands the oldest kept deliveries (at most maxInboxTake) to process, which returns
// the ids of those it finished; the rest are offered again first on the next call.
func (l *InboxLog) TakeWAInbox(ctx context.Context, process func([]whatsapp.InboxItem) ([]int64, error)) (int, error) {
	if err := l.ensureOpen(); err != nil {
		return 0, err
	}
	l.takeMu.Lock()
	defer l.takeMu.Unlock()
	items := slices.Clone(l.pending)
	items, err := l.readMore(items, maxInboxTake-len(items))
	if err != nil {
		l.pending = items // what was read before the failure is offered first next time
		return 0, err
	}
	if len(items) == 0 {
		l.dropDone() // a segment finished before the writer moved on from it
		return 0, nil
	}
	done, perr := process(items)
	finished := make(map[int64]bool, len(done))
	for _, id := range done {
		finished[id] = true
	}
	l.pending = l.pending[:0]
	for _, it := range items {
		if !finished[it.ID] {
			l.pending = append(l.pending, it)
		}
	}
	n := len(items) - len(l.pending)
	l.waiting.Add(-int64(n))
	cp := items[len(items)-1].ID + 1
	if len(l.pending) > 0 {
		cp = l.pending[0].ID
	}
	if err := l.saveCheckpoint(cp); err != nil {
		return n, errors.Join(perr, err)
	}
	l.dropDone()
	l.mu.Lock()
	caughtUp := len(l.pending) == 0 && l.rseg == len(l.segs)-1 && l.roff == l.segs[l.rseg].size && l.roff >= inboxRotateBytes
	l.mu.Unlock()
	if caughtUp {
		select {
		case l.rotate <- struct{}{}:
		default:
		}
	}
	return n, perr
}

// readMore appends up to n records after the last one read.
func (l *InboxLog) readMore(items []inboxRecord, n int) ([]inboxRecord, error) {
	for n > 0 {
		l.mu.Lock()
		if l.rseg >= len(l.segs) {
			l.mu.Unlock()
			return items, nil
		}
		seg, size, last := l.segs[l.rseg], l.segs[l.rseg].size, l.rseg == len(l.segs)-1
		l.mu.Unlock()
		if l.roff >= size {
			if last {
				return items, nil
			}
			l.rseg++
			l.roff = 0
			continue
		}
		if seg.r == nil {
			f, err := os.Open(seg.path)
			if err != nil {
				return items, fmt.Errorf("read whatsapp inbox: %w", err)
			}
			seg.r = f
		}
		rec, size, err := readInboxRecord(seg.r, l.roff, l.checkpoint)
		if errors.Is(err, errInboxChecksum) {
			// Damaged on disk after it was written and acknowledged (the scan at open checked
			// it): drop it, loudly, rather than hold every later delivery behind it for ever.
			l.log.Error("whatsapp inbox: a kept delivery is damaged on disk and dropped", "segment", seg.path, "offset", l.roff)
			l.roff += size
			continue
		}
		if err != nil {
			return items, fmt.Errorf("read whatsapp inbox %s at %d: %w", seg.path, l.roff, err)
		}
		l.roff += size
		if rec.ID < l.checkpoint {
			continue // done before a restart
		}
		items = append(items, rec)
		n--
	}
	return items, nil
}

func (l *InboxLog) saveCheckpoint(id int64) error {
	if id <= l.checkpoint {
		return nil
	}
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(id))
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], crcTable))
	if _, err := l.cpFile.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("whatsapp inbox checkpoint: %w", err)
	}
	l.checkpoint = id
	return nil
}

// dropDone deletes the segments whose every record is done: those followed by a segment that
// starts at or below the checkpoint, once read past (or not begun: the reader would skip them).
func (l *InboxLog) dropDone() {
	l.mu.Lock()
	var drop []*inboxSegment
	for len(l.segs) > 1 && l.segs[1].first <= l.checkpoint && (l.rseg > 0 || l.roff == 0) {
		drop = append(drop, l.segs[0])
		l.segs = l.segs[1:]
		l.rseg = max(l.rseg-1, 0)
	}
	l.mu.Unlock()
	for _, seg := range drop {
		if seg.r != nil {
			seg.r.Close()
		}
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("whatsapp inbox: drained segment not removed", "segment", seg.path, "err", err)
		}
	}
}

// Close stops the writer after the deliveries handed to it and closes the files; what is not
// done stays for the next start.
func (l *InboxLog) Close() error {
	l.sendMu.Lock() // no send is under way: those waiting see closed
	if !l.closed.CompareAndSwap(false, true) {
		l.sendMu.Unlock()
		return nil
	}
	l.openOnce.Do(func() { l.openErr = errors.New("closed") })
	if l.appends != nil {
		close(l.appends) // the writer writes and answers what is queued, then ends
	}
	l.sendMu.Unlock()
	if l.wdone != nil {
		<-l.wdone
	}
	// A take still running (its drainer not stopped in time) keeps the reader's files: they go
	// with the process.
	deadline := time.Now().Add(5 * time.Second)
	for !l.takeMu.TryLock() {
		if time.Now().After(deadline) {
			return errors.New("whatsapp inbox: a take still running at close")
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer l.takeMu.Unlock()
	return l.closeFiles()
}

func (l *InboxLog) closeFiles() error {
	var errs []error
	if l.w != nil {
		errs = append(errs, l.w.Close())
	}
	for _, seg := range l.segs {
		if seg.r != nil {
			errs = append(errs, seg.r.Close())
		}
	}
	if l.cpFile != nil {
		errs = append(errs, l.cpFile.Close())
	}
	if l.lock != nil {
		errs = append(errs, l.lock.Close()) // releases the lock
	}
	return errors.Join(errs...)
}
