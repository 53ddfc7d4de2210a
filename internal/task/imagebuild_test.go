package task_test

import (
	"errors"
	"testing"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/task"
)

// TestImageBuildArgsValidate guards image builds from API callers: an Ubuntu suite
// with a caller's mirror was installed without a signature check (maintainer
// scripts run as root on the host), and a build could re-tag any image.
func TestImageBuildArgsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec task.ImageBuildArgs
		want error // nil: valid
	}{
		{"defaults", task.ImageBuildArgs{}, nil},
		{"allowed suite and ref", task.ImageBuildArgs{Suite: "trixie", Ref: "aetherium/base:trixie", Include: []string{"git"}}, nil},
		{"suite outside the allowlist", task.ImageBuildArgs{Suite: "noble"}, errdefs.ErrUnprocessable},
		{"mirror in the request", task.ImageBuildArgs{Mirror: "http://evil.example/ubuntu"}, errdefs.ErrUnprocessable},
		{"ref outside the namespace", task.ImageBuildArgs{Ref: "alpine:latest"}, errdefs.ErrUnprocessable},
		{"ref with a shell character", task.ImageBuildArgs{Ref: "aetherium/x;rm"}, errdefs.ErrUnprocessable},
		{"package with a space", task.ImageBuildArgs{Include: []string{"a b"}}, errdefs.ErrInvalidArgument},
		{"empty package", task.ImageBuildArgs{Include: []string{""}}, errdefs.ErrInvalidArgument},
		{"suite with a slash", task.ImageBuildArgs{Suite: "../x"}, errdefs.ErrUnprocessable},
		{"package that is an option", task.ImageBuildArgs{Include: []string{"--no-check-gpg"}}, errdefs.ErrInvalidArgument},
		{"package list injection", task.ImageBuildArgs{Include: []string{"git,evil"}}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := tt.spec
			err := spec.Validate()
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Validate(%+v) = %v; want %v", tt.spec, err, tt.want)
			}
		})
	}
}
