// Package errdefs defines the error classes shared by every Aetherium package.
//
// Packages wrap one of these sentinels with %w where an error enters the
// system (a SQL no-rows, a Docker "No such container", a bad request field), so
// callers test the class with errors.Is and the API maps it to an HTTP status
// in one place. It is a leaf package: it imports nothing from Aetherium.
package errdefs

import (
	"errors"
	"fmt"
)

// The error classes. Test with errors.Is; create with the helpers below.
var (
	ErrNotFound           = errors.New("not found")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrAlreadyExists      = errors.New("already exists")
	ErrConflict           = errors.New("conflict")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrNotImplemented     = errors.New("not implemented")
	ErrTimeout            = errors.New("timeout")
)

// classed is an error with a class and a message of its own: errors.Is matches
// the class, Error prints only the message, so users do not read "not found: ".
type classed struct {
	class error
	msg   string
}

func (e *classed) Error() string        { return e.msg }
func (e *classed) Is(target error) bool { return target == e.class }

// NotFound returns an ErrNotFound with a formatted message.
func NotFound(format string, a ...any) error { return newf(ErrNotFound, format, a...) }

// InvalidArgument returns an ErrInvalidArgument with a formatted message.
func InvalidArgument(format string, a ...any) error {
	return newf(ErrInvalidArgument, format, a...)
}

// AlreadyExists returns an ErrAlreadyExists with a formatted message.
func AlreadyExists(format string, a ...any) error { return newf(ErrAlreadyExists, format, a...) }

// Conflict returns an ErrConflict with a formatted message.
func Conflict(format string, a ...any) error { return newf(ErrConflict, format, a...) }

// FailedPrecondition returns an ErrFailedPrecondition with a formatted message.
func FailedPrecondition(format string, a ...any) error {
	return newf(ErrFailedPrecondition, format, a...)
}

// Unavailable returns an ErrUnavailable with a formatted message.
func Unavailable(format string, a ...any) error { return newf(ErrUnavailable, format, a...) }

func newf(class error, format string, a ...any) error {
	return &classed{class: class, msg: fmt.Sprintf(format, a...)}
}

// ErrUnprocessable is a well-formed request that names something the server
// cannot act on (an unknown tool, an impossible version): HTTP 422.
var ErrUnprocessable = errors.New("unprocessable")

// Unprocessable returns an ErrUnprocessable with a formatted message.
func Unprocessable(format string, a ...any) error { return newf(ErrUnprocessable, format, a...) }

// ErrQuotaExceeded is a request that would take a project past its quota:
// HTTP 429. Nothing was created.
var ErrQuotaExceeded = errors.New("quota exceeded")

// QuotaExceeded returns an ErrQuotaExceeded with a formatted message.
func QuotaExceeded(format string, a ...any) error { return newf(ErrQuotaExceeded, format, a...) }
