package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// MaxBodyBytes caps a JSON request body.
const MaxBodyBytes = 1 << 20

// Error is an API error: an HTTP status and the contract's {"error": {code, message}} body.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError writes err as the contract's JSON error. Anything that is not an *Error is a bug of
// ours: it is logged and answered 500 without details.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		slog.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: "Something went wrong on our side; it has been logged."}
	}
	if e.Status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
}

// DecodeJSON reads a JSON object body into v: 413 past MaxBodyBytes, 400 for anything malformed.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		return errorf(http.StatusBadRequest, "invalid_json", "the body must hold exactly one JSON object")
	}
	return nil
}

func decodeError(err error) *Error {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the body must be at most %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "invalid_json", "the body is empty; send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "invalid_json", "the body is not valid JSON")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return errorf(http.StatusBadRequest, "invalid_json", "the body must be a JSON object")
		}
		return errorf(http.StatusBadRequest, "invalid_field", "field %q must be %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()))
	}
	return errorf(http.StatusBadRequest, "invalid_json", "the body could not be read as JSON: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "float64", "float32", "int", "int64", "int32":
		return "a number"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "of another type"
}

// jsonErrors rewrites the plain-text errors net/http itself writes (unknown route, wrong method)
// into the contract's JSON errors.
func jsonErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&errorRewriter{ResponseWriter: w, r: r}, r)
	})
}

type errorRewriter struct {
	http.ResponseWriter
	r       *http.Request
	swallow bool
}

func (e *errorRewriter) WriteHeader(code int) {
	h := e.Header()
	if code >= 400 && strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		e.swallow = true
		h.Del("Content-Length")
		switch code {
		case http.StatusNotFound:
			WriteJSON(e.ResponseWriter, code, errorBody{errorDetail{"not_found", "no such endpoint: " + e.r.Method + " " + e.r.URL.Path}})
		case http.StatusMethodNotAllowed:
			WriteJSON(e.ResponseWriter, code, errorBody{errorDetail{"method_not_allowed", e.r.Method + " is not allowed on " + e.r.URL.Path}})
		default:
			WriteJSON(e.ResponseWriter, code, errorBody{errorDetail{"bad_request", http.StatusText(code)}})
		}
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *errorRewriter) Write(b []byte) (int, error) {
	if e.swallow {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

func (e *errorRewriter) Flush() {
	if f, ok := e.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (e *errorRewriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// WriteErrorLog logs an error that cannot be answered any more (the response is already written).
func WriteErrorLog(r *http.Request, err error) {
	slog.ErrorContext(r.Context(), "after the response", "method", r.Method, "path", r.URL.Path, "err", err)
}
