package server

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestLimitInFlightShedsWith503(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	h := limitInFlight(2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered.Done()
			<-release
		}
		w.WriteHeader(200)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.URL + "/slow")
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	entered.Wait() // both slots are taken
	resp, err := http.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over capacity: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s under load: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	close(release)
	wg.Wait()
	resp, err = http.Get(srv.URL + "/fast")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the load: %v %v", resp, err)
	}
	resp.Body.Close()
}
