package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	box, err := Load("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "EAAG-token", "ünïcode ✓", strings.Repeat("x", 5000)} {
		sealed, err := box.Seal(s)
		if err != nil {
			t.Fatal(err)
		}
		if s != "" && strings.Contains(sealed, s) {
			t.Fatalf("sealed text contains the plaintext")
		}
		got, err := box.Open(sealed)
		if err != nil || got != s {
			t.Fatalf("Open(Seal(%q)) = %q, %v", s, got, err)
		}
	}
}

func TestKeyFileIsReusedAndWrongKeyFails(t *testing.T) {
	dir := t.TempDir()
	a, err := Load("", dir)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := a.Seal("secret")
	info, err := os.Stat(filepath.Join(dir, "secret.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	b, err := Load("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Open(sealed); err != nil || got != "secret" {
		t.Fatalf("reloaded key cannot open: %q %v", got, err)
	}
	other, _ := Load("a-different-key-of-enough-length", dir)
	if _, err := other.Open(sealed); err == nil {
		t.Fatal("a different key opened the secret")
	}
}
