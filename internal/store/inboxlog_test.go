package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/whatsapp"
)

func openInboxLog(t *testing.T, dbPath string) *InboxLog {
	t.Helper()
	l := NewInboxLog(dbPath, nil)
	t.Cleanup(func() { l.Close() })
	return l
}

func addDeliveries(t *testing.T, l *InboxLog, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := l.AddWAInbox(context.Background(), []string{"111", "222"}, []byte(fmt.Sprintf(`{"n":%d}`, i)), time.UnixMilli(int64(1_700_000_000_000+i))); err != nil {
			t.Fatal(err)
		}
	}
}

// takeAll takes until nothing is left, finishing the items finish says, and returns the bodies
// of those finished, in the order taken.
func takeAll(t *testing.T, l *InboxLog, finish func(whatsapp.InboxItem) bool) []string {
	t.Helper()
	var bodies []string
	for {
		n, err := l.TakeWAInbox(context.Background(), func(items []whatsapp.InboxItem) ([]int64, error) {
			var done []int64
			for _, it := range items {
				if finish(it) {
					done = append(done, it.ID)
					bodies = append(bodies, string(it.Body))
				}
			}
			return done, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return bodies
		}
	}
}

func wantBodies(t *testing.T, got []string, from, to int) {
	t.Helper()
	var want []string
	for i := from; i < to; i++ {
		want = append(want, fmt.Sprintf(`{"n":%d}`, i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d deliveries %.200v, want %d %.200v", len(got), got, len(want), want)
	}
}

func countInbox(t *testing.T, l *InboxLog) int64 {
	t.Helper()
	n, err := l.CountWAInbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestInboxLogKeepsAndHandsOut: deliveries come back as they were kept, in order, at most a take's
// worth at a time; those not finished come first in the next take.
func TestInboxLogKeepsAndHandsOut(t *testing.T) {
	l := openInboxLog(t, filepath.Join(t.TempDir(), "parley.db"))
	addDeliveries(t, l, 0, 300)
	if n := countInbox(t, l); n != 300 {
		t.Fatalf("count %d, want 300", n)
	}
	var first []whatsapp.InboxItem
	n, err := l.TakeWAInbox(context.Background(), func(items []whatsapp.InboxItem) ([]int64, error) {
		first = items
		var done []int64
		for i, it := range items {
			if i%2 == 0 { // every other one fails
				done = append(done, it.ID)
			}
		}
		return done, fmt.Errorf("half failed")
	})
	if err == nil || n != maxInboxTake/2 || len(first) != maxInboxTake {
		t.Fatalf("first take: %d done of %d, %v", n, len(first), err)
	}
	it := first[1]
	if !slices.Equal(it.PhoneNumberIDs, []string{"111", "222"}) || string(it.Body) != `{"n":1}` || it.ReceivedAt.UnixMilli() != 1_700_000_000_001 {
		t.Fatalf("kept delivery came back as %+v", it)
	}
	if n := countInbox(t, l); n != 300-maxInboxTake/2 {
		t.Fatalf("count %d after the first take", n)
	}
	var again []string
	got := takeAll(t, l, func(it whatsapp.InboxItem) bool { again = append(again, string(it.Body)); return true })
	if again[0] != `{"n":1}` || again[1] != `{"n":3}` {
		t.Fatalf("the unfinished ones do not come first: %v", again[:4])
	}
	if len(got) != 300-maxInboxTake/2 || countInbox(t, l) != 0 {
		t.Fatalf("%d more finished, %d left", len(got), countInbox(t, l))
	}
	// Empty now; new deliveries are handed out as they come.
	addDeliveries(t, l, 300, 310)
	wantBodies(t, takeAll(t, l, func(whatsapp.InboxItem) bool { return true }), 300, 310)
}

// TestInboxLogSurvivesRestart: what was not finished before a restart (or a kill: nothing is
// closed) is handed out after it, what was finished is not, and ids keep growing.
func TestInboxLogSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	l := NewInboxLog(path, nil)
	addDeliveries(t, l, 0, 200)
	wantBodies(t, takeAll(t, l, func(it whatsapp.InboxItem) bool { return it.ID <= 50 }), 0, 50)
	// No Close: as after SIGKILL. The lock goes with the process; here with the file.
	l.lock.Close()

	l2 := openInboxLog(t, path)
	if n := countInbox(t, l2); n != 150 {
		t.Fatalf("after a restart %d wait, want 150", n)
	}
	addDeliveries(t, l2, 200, 210)
	got := takeAll(t, l2, func(whatsapp.InboxItem) bool { return true })
	wantBodies(t, got, 50, 210)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	l3 := openInboxLog(t, path)
	if n := countInbox(t, l3); n != 0 {
		t.Fatalf("after everything was finished and a restart %d wait", n)
	}
	addDeliveries(t, l3, 210, 211)
	var ids []int64
	takeAll(t, l3, func(it whatsapp.InboxItem) bool { ids = append(ids, it.ID); return true })
	if len(ids) != 1 || ids[0] <= 210 {
		t.Fatalf("ids after restarts: %v", ids)
	}
	segs, _ := filepath.Glob(filepath.Join(l3.dir, "*.log"))
	if len(segs) != 1 {
		t.Fatalf("finished segments not removed: %v", segs)
	}
}

// TestInboxLogCutsATornTail: a record cut short by a crash mid-write (never acknowledged) is cut
// off at the next start; what came before it is intact, and new deliveries follow it.
func TestInboxLogCutsATornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	l := NewInboxLog(path, nil)
	addDeliveries(t, l, 0, 5)
	seg := l.wseg.path
	l.Close()
	for name, damage := range map[string]func([]byte) []byte{
		"cut short": func(b []byte) []byte { return append(b, appendInboxRecord(nil, 99, 0, "1", []byte("torn"))[:20]...) },
		"bad checksum": func(b []byte) []byte {
			r := appendInboxRecord(nil, 99, 0, "1", []byte("torn"))
			r[len(r)-1]++
			return append(b, r...)
		},
		"zeros": func(b []byte) []byte { return append(b, make([]byte, 4096)...) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "parley.db")
			if err := os.MkdirAll(filepath.Join(dir, "parley-inbox.log"), 0o750); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "parley-inbox.log", filepath.Base(seg)), damage(b), 0o640); err != nil {
				t.Fatal(err)
			}
			l := openInboxLog(t, p)
			if n := countInbox(t, l); n != 5 {
				t.Fatalf("%d wait, want 5", n)
			}
			if st, err := os.Stat(filepath.Join(dir, "parley-inbox.log", filepath.Base(seg))); err != nil || st.Size() != int64(len(b)) {
				t.Fatalf("the torn tail was not cut off: %v, %v bytes, want %d", err, st.Size(), len(b))
			}
			addDeliveries(t, l, 5, 8)
			wantBodies(t, takeAll(t, l, func(whatsapp.InboxItem) bool { return true }), 0, 8)
		})
	}
}

// TestInboxLogRollsSegments: a long burst spreads over segments, each removed once finished,
// while deliveries keep coming from many goroutines at once.
func TestInboxLogRollsSegments(t *testing.T) {
	l := openInboxLog(t, filepath.Join(t.TempDir(), "parley.db"))
	body := strings.Repeat("x", 64<<10)
	const writers, each = 8, 200 // 100 MB: two segments at least
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := l.AddWAInbox(context.Background(), []string{"1"}, []byte(fmt.Sprintf("%d.%d.%s", w, i, body)), time.Now()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Drained meanwhile: each writer's deliveries come out in the order it kept them.
	next := make([]int, writers)
	got := 0
	for got < writers*each {
		n, err := l.TakeWAInbox(context.Background(), func(items []whatsapp.InboxItem) ([]int64, error) {
			var done []int64
			for _, it := range items {
				var w, i int
				fmt.Sscanf(string(it.Body), "%d.%d.", &w, &i)
				if i != next[w] {
					return done, fmt.Errorf("writer %d: delivery %d came after %d", w, i, next[w]-1)
				}
				next[w]++
				done = append(done, it.ID)
			}
			return done, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got += n
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	segs, _ := filepath.Glob(filepath.Join(l.dir, "*.log"))
	if len(segs) != 1 {
		t.Fatalf("%d segments left after everything was finished: %v", len(segs), segs)
	}
}

// TestInboxLogStartsAfreshOnceDrained: once every delivery of a large segment is done, the writer
// moves to a new segment and the drained one is removed, so a restart does not read it again.
func TestInboxLogStartsAfreshOnceDrained(t *testing.T) {
	l := openInboxLog(t, filepath.Join(t.TempDir(), "parley.db"))
	body := []byte(strings.Repeat("x", 4096))
	for range 2 * inboxRotateBytes / len(body) {
		if err := l.AddWAInbox(context.Background(), []string{"1"}, body, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	takeAll(t, l, func(whatsapp.InboxItem) bool { return true })
	deadline := time.Now().Add(5 * time.Second)
	for {
		takeAll(t, l, func(whatsapp.InboxItem) bool { return true }) // as the drainer's tick does
		segs, _ := filepath.Glob(filepath.Join(l.dir, "*.log"))
		st, err := os.Stat(segs[0])
		if len(segs) == 1 && err == nil && st.Size() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drained segment still there: %v", segs)
		}
		time.Sleep(time.Millisecond)
	}
	addDeliveries(t, l, 0, 3)
	wantBodies(t, takeAll(t, l, func(whatsapp.InboxItem) bool { return true }), 0, 3)
}

// TestInboxLogKeepsWhatWasReadWhenAReadFails: a take that fails part-way through reading hands
// out what it had read on the next take, and a record damaged on disk after it was kept is dropped
// (logged) instead of holding every later delivery behind it.
func TestInboxLogKeepsWhatWasReadWhenAReadFails(t *testing.T) {
	l := openInboxLog(t, filepath.Join(t.TempDir(), "parley.db"))
	addDeliveries(t, l, 0, 10)
	seg := l.wseg.path
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recordAt := func(i int) int64 { // offset of the i-th record: all are the same size here
		return int64(i) * int64(len(appendInboxRecord(nil, 1, 0, "111,222", []byte(`{"n":0}`))))
	}
	var saved [4]byte
	f.ReadAt(saved[:], recordAt(6))
	f.WriteAt([]byte{0, 0, 0, 0}, recordAt(6)) // a length no record has: unreadable
	if _, err := l.TakeWAInbox(context.Background(), func(items []whatsapp.InboxItem) ([]int64, error) {
		t.Fatal("process called despite the failed read")
		return nil, nil
	}); err == nil {
		t.Fatal("a take over an unreadable record did not fail")
	}
	f.WriteAt(saved[:], recordAt(6))
	var payload [1]byte
	f.ReadAt(payload[:], recordAt(8)+30)
	f.WriteAt([]byte{payload[0] ^ 0xff}, recordAt(8)+30) // not read yet, damaged: fails its checksum
	got := takeAll(t, l, func(whatsapp.InboxItem) bool { return true })
	want := []string{}
	for i := range 10 {
		if i != 8 {
			want = append(want, fmt.Sprintf(`{"n":%d}`, i))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after the failed read: %v, want %v", got, want)
	}
}

// TestInboxLogClosesUnderLoad: deliveries kept while the inbox closes either are kept (and there
// after a restart) or get an error; none panics or waits for ever.
func TestInboxLogClosesUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	l := NewInboxLog(path, nil)
	addDeliveries(t, l, 0, 1)
	var kept atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := l.AddWAInbox(context.Background(), []string{"1"}, []byte("{}"), time.Now()); err != nil {
					return
				}
				kept.Add(1)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	l2 := openInboxLog(t, path)
	if n := countInbox(t, l2); n != kept.Load()+1 {
		t.Fatalf("%d kept after a restart, %d acknowledged", n, kept.Load()+1)
	}
}

// TestInboxLogRefusesWhatItCouldNotReadBack: a delivery larger than a record may be is refused,
// not written and then dropped by the reader.
func TestInboxLogRefusesWhatItCouldNotReadBack(t *testing.T) {
	l := openInboxLog(t, filepath.Join(t.TempDir(), "parley.db"))
	if err := l.AddWAInbox(context.Background(), []string{strings.Repeat("1", 70_000)}, []byte("{}"), time.Now()); err == nil {
		t.Fatal("65 KB of phone number ids kept")
	}
	if err := l.AddWAInbox(context.Background(), nil, make([]byte, maxInboxRecord), time.Now()); err == nil {
		t.Fatal("an oversized body kept")
	}
	if n := countInbox(t, l); n != 0 {
		t.Fatalf("%d kept", n)
	}
}

// TestInboxLogImportsTheOldDatabase: deliveries kept by a version before the log (in
// parley-inbox.db) are handed out first, and the old database is gone.
func TestInboxLogImportsTheOldDatabase(t *testing.T) {
	dir := t.TempDir()
	old, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "parley-inbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`CREATE TABLE wa_inbox (id INTEGER PRIMARY KEY, phone_number_ids TEXT NOT NULL, body BLOB NOT NULL, received_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := old.Exec(`INSERT INTO wa_inbox (phone_number_ids, body, received_at) VALUES ('111,222', ?, ?)`, fmt.Sprintf(`{"n":%d}`, i), 1_700_000_000_000+i); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	l := openInboxLog(t, filepath.Join(dir, "parley.db"))
	addDeliveries(t, l, 3, 5)
	var items []whatsapp.InboxItem
	takeAll(t, l, func(it whatsapp.InboxItem) bool { items = append(items, it); return true })
	var bodies []string
	for _, it := range items {
		bodies = append(bodies, string(it.Body))
	}
	wantBodies(t, bodies, 0, 5)
	if !slices.Equal(items[0].PhoneNumberIDs, []string{"111", "222"}) || items[2].ReceivedAt.UnixMilli() != 1_700_000_000_002 {
		t.Fatalf("imported delivery: %+v", items[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "parley-inbox.db")); !os.IsNotExist(err) {
		t.Fatalf("the old inbox database is still there: %v", err)
	}
}

// TestInboxLogIsOneProcesss: a second opener of the same inbox is refused while the first holds
// it, and gets it once the first is closed.
func TestInboxLogIsOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	l := NewInboxLog(path, nil)
	addDeliveries(t, l, 0, 1)
	second := NewInboxLog(path, nil)
	if err := second.AddWAInbox(context.Background(), nil, []byte("{}"), time.Now()); err == nil || !strings.Contains(err.Error(), "another Parley server") {
		t.Fatalf("a second opener was let in: %v", err)
	}
	l.Close()
	third := openInboxLog(t, path)
	if n := countInbox(t, third); n != 1 {
		t.Fatalf("%d wait, want 1", n)
	}
}

// BenchmarkInboxLogAdd: keeping a delivery from 32 goroutines at once, as a burst's handlers do.
func BenchmarkInboxLogAdd(b *testing.B) {
	l := NewInboxLog(filepath.Join(b.TempDir(), "parley.db"), nil)
	defer l.Close()
	body := []byte(strings.Repeat("x", 700))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.AddWAInbox(context.Background(), []string{"106540352242922"}, body, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
