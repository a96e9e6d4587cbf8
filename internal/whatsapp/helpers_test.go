package whatsapp

import (
	"io"
	"strings"
)

func ioNopCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }
