package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// httpStatus maps an error class to its HTTP status and code. It is the only
// place that does.
func httpStatus(err error) (int, string) {
	var mbe *http.MaxBytesError
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status, he.code
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated"
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, errdefs.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, errdefs.ErrQuotaExceeded):
		return http.StatusTooManyRequests, "quota_exceeded"
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return http.StatusBadRequest, "invalid_argument"
	case errors.Is(err, errdefs.ErrUnprocessable):
		return http.StatusUnprocessableEntity, "unprocessable"
	case errors.Is(err, errdefs.ErrAlreadyExists):
		return http.StatusConflict, "already_exists"
	case errors.Is(err, errdefs.ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		return http.StatusConflict, "failed_precondition"
	case errors.Is(err, errdefs.ErrUnavailable):
		return http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, errdefs.ErrNotImplemented):
		return http.StatusNotImplemented, "not_implemented"
	case errors.Is(err, errdefs.ErrTimeout):
		return http.StatusGatewayTimeout, "timeout"
	}
	return http.StatusInternalServerError, "internal"
}

// httpError is a refusal of the HTTP layer itself (role, rate, media type,
// origin, host), with its own status and code.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func forbidden(format string, a ...any) error {
	return &httpError{http.StatusForbidden, "forbidden", fmt.Sprintf(format, a...)}
}

func unsupportedMedia(format string, a ...any) error {
	return &httpError{http.StatusUnsupportedMediaType, "unsupported_media_type", fmt.Sprintf(format, a...)}
}

func rateLimited(format string, a ...any) error {
	return &httpError{http.StatusTooManyRequests, "rate_limited", fmt.Sprintf(format, a...)}
}

func misdirected(format string, a ...any) error {
	return &httpError{http.StatusMisdirectedRequest, "wrong_host", fmt.Sprintf(format, a...)}
}

// errorDetailOf is the client-facing detail of err. 5xx bodies never carry
// internal messages.
func errorDetailOf(err error) (int, apiv1.ErrorDetail) {
	status, code := httpStatus(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error; see the server log"
	}
	return status, apiv1.ErrorDetail{Code: code, Message: msg}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, detail := errorDetailOf(err)
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", slog.String("route", r.Pattern), slog.Any("err", err))
	}
	writeJSON(w, status, apiv1.ErrorBody{Error: detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// maxJSONBody caps JSON request bodies.
const maxJSONBody = 1 << 20

// decodeJSON strictly decodes one JSON object: unknown fields, wrong types,
// trailing data and oversized bodies are InvalidArgument errors naming the
// problem.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxJSONBody)
	return decodeFrom(r.Body, v)
}

func decodeFrom(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return errdefs.InvalidArgument("request body has data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("request body larger than %d bytes: %w", mbe.Limit, err)
	case errors.Is(err, io.EOF):
		return errdefs.InvalidArgument("request body is empty; expected a JSON object")
	case errors.As(err, &syn):
		return errdefs.InvalidArgument("malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return errdefs.InvalidArgument("request body must be a JSON object, not %s", typ.Value)
		}
		return errdefs.InvalidArgument("%s: expected %s, got %s", field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errdefs.InvalidArgument("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errdefs.InvalidArgument("malformed JSON: unexpected end of body")
	}
	return errdefs.InvalidArgument("malformed JSON: %v", err)
}
