package blob

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeS3 is a minimal S3 endpoint (path-style PUT/GET/HEAD/DELETE of objects) that checks each
// request is SigV4-signed.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKID/") {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	notFound := func() {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		if r.Method != http.MethodHead {
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>`+r.URL.Path+`</Key></Error>`)
		}
	}
	switch r.Method {
	case http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			b = decodeChunked(b)
		}
		f.objects[r.URL.Path] = b
		w.Header().Set("ETag", `"abc"`)
	case http.MethodGet, http.MethodHead:
		b, ok := f.objects[r.URL.Path]
		if !ok {
			notFound()
			return
		}
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		if r.Method == http.MethodGet {
			w.Write(b)
		}
	case http.MethodDelete:
		delete(f.objects, r.URL.Path)
		w.WriteHeader(http.StatusNoContent)
	}
}

// decodeChunked undoes aws-chunked encoding: "<hex size>;chunk-signature=…\r\n<data>\r\n" until size 0.
func decodeChunked(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		line, rest, ok := strings.Cut(string(b), "\r\n")
		if !ok {
			break
		}
		sizeHex, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil || n == 0 || int(n) > len(rest) {
			break
		}
		out = append(out, rest[:n]...)
		b = []byte(strings.TrimPrefix(rest[n:], "\r\n"))
	}
	return out
}

func TestS3Store(t *testing.T) {
	fake := &fakeS3{objects: map[string][]byte{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s, err := NewS3(S3Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "media", Region: "us-east-1", AccessKey: "AKID", SecretKey: "secret",
		Prefix: "parley", Insecure: true, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := s.Put(ctx, "whatsapp/ws/m1", strings.NewReader("voice bytes"), 100)
	if err != nil || n != 11 {
		t.Fatalf("put: %d %v", n, err)
	}
	if _, ok := fake.objects["/media/parley/whatsapp/ws/m1"]; !ok {
		t.Fatalf("stored under %v", fake.objects)
	}
	rc, err := s.Open(ctx, "whatsapp/ws/m1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "voice bytes" {
		t.Fatalf("read %q", b)
	}
	if _, err := s.Put(ctx, "big", strings.NewReader(strings.Repeat("x", 101)), 100); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, ok := fake.objects["/media/parley/big"]; ok {
		t.Fatal("a too-large blob was uploaded")
	}
	if _, err := s.Open(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := s.Delete(ctx, "whatsapp/ws/m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "whatsapp/ws/m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := s.Put(ctx, "../escape", strings.NewReader("x"), 10); err == nil {
		t.Fatal("a key with .. was accepted")
	}
}
