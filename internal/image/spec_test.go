package image_test

import (
	"errors"
	"testing"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/image"
)

// TestSpecValidate guards image builds from API callers: an Ubuntu suite
// with a caller's mirror was installed without a signature check (maintainer
// scripts run as root on the host), and a build could re-tag any image.
func TestSpecValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec image.Spec
		want error // nil: valid
	}{
		{"defaults", image.Spec{}, nil},
		{"allowed suite and ref", image.Spec{Suite: "trixie", Ref: "aetherium/base:trixie", Include: []string{"git"}}, nil},
		{"suite outside the allowlist", image.Spec{Suite: "noble"}, errdefs.ErrUnprocessable},
		{"mirror in the request", image.Spec{Mirror: "http://evil.example/ubuntu"}, errdefs.ErrUnprocessable},
		{"ref outside the namespace", image.Spec{Ref: "alpine:latest"}, errdefs.ErrUnprocessable},
		{"ref with a shell character", image.Spec{Ref: "aetherium/x;rm"}, errdefs.ErrUnprocessable},
		{"package that is an option", image.Spec{Include: []string{"--no-check-gpg"}}, errdefs.ErrInvalidArgument},
		{"package list injection", image.Spec{Include: []string{"git,evil"}}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.spec.Validate()
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Validate(%+v) = %v; want %v", tt.spec, err, tt.want)
			}
		})
	}
}
