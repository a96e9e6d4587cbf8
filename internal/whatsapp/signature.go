package whatsapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SignatureHeader is the header Meta signs webhook deliveries in.
const SignatureHeader = "X-Hub-Signature-256"

// Sign returns the X-Hub-Signature-256 value of body under secret: "sha256=" and the hex HMAC.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// ParseSignature decodes a header value "sha256=<64 hex>"; ok is false for anything else.
func ParseSignature(header string) (sum []byte, ok bool) {
	hexSum, found := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !found || len(hexSum) != 2*sha256.Size {
		return nil, false
	}
	sum, err := hex.DecodeString(hexSum)
	if err != nil {
		return nil, false
	}
	return sum, true
}

// VerifySignature reports whether sum is the HMAC-SHA256 of the exact raw body under secret,
// compared in constant time. The body must be the bytes as received: Meta signs its own
// serialization (non-ASCII escaped as \uXXXX, "/" as "\/"), which re-encoding would change.
func VerifySignature(body []byte, sum []byte, secret string) bool {
	if secret == "" || len(sum) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), sum)
}
