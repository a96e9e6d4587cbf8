package blob

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDiskPutOpenDelete(t *testing.T) {
	d := Disk{Dir: t.TempDir()}
	ctx := context.Background()
	n, err := d.Put(ctx, "ws/media/a.ogg", strings.NewReader("voice"), 10)
	if err != nil || n != 5 {
		t.Fatalf("Put = %d, %v", n, err)
	}
	rc, err := d.Open(ctx, "ws/media/a.ogg")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "voice" {
		t.Fatalf("read %q", b)
	}
	if _, err := d.Put(ctx, "ws/big", strings.NewReader("0123456789x"), 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := d.Open(ctx, "ws/big"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused blob was kept: %v", err)
	}
	if _, err := d.Put(ctx, "../escape", strings.NewReader("x"), 10); err == nil {
		t.Fatal("a key with .. was accepted")
	}
	if err := d.Delete(ctx, "ws/media/a.ogg"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(ctx, "ws/media/a.ogg"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted blob still there: %v", err)
	}
}
