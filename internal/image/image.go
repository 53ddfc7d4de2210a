// Package image builds sandbox images locally, since no registry is assumed
// reachable: a Debian rootfs from debootstrap, imported into Docker. Builds
// are cached by image reference: building an image that exists does nothing
// unless forced.
package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/aetherium/aetherium/internal/errdefs"
)

// DefaultRef is the image sandboxes use when none is named.
const DefaultRef = "aetherium/base:bookworm"

// Spec describes a Debian image to build.
type Spec struct {
	// Ref is the Docker reference to tag the result with; empty means DefaultRef.
	Ref string `json:"ref"`
	// Suite is the Debian release; empty means "bookworm".
	Suite string `json:"suite"`
	// Include lists extra Debian packages; nil means ca-certificates, git, curl.
	Include []string `json:"include"`
	// Mirror is the Debian mirror; empty means http://deb.debian.org/debian.
	Mirror string `json:"mirror"`
	// Force rebuilds even when the image exists.
	Force bool `json:"force"`
}

func (s *Spec) withDefaults() {
	if s.Ref == "" {
		s.Ref = DefaultRef
	}
	if s.Suite == "" {
		s.Suite = "bookworm"
	}
	if s.Include == nil {
		s.Include = []string{"ca-certificates", "git", "curl"}
	}
	if s.Mirror == "" {
		s.Mirror = "http://deb.debian.org/debian"
	}
}

// Validate reports a spec that cannot be built, naming the field.
func (s *Spec) Validate() error {
	for _, p := range s.Include {
		if p == "" || strings.ContainsAny(p, " ,;'\"$`\\") {
			return errdefs.InvalidArgument("include: %q is not a package name", p)
		}
	}
	if s.Suite != "" && strings.ContainsAny(s.Suite, " /;'\"$`\\") {
		return errdefs.InvalidArgument("suite: %q is not a Debian suite name", s.Suite)
	}
	if s.Ref != "" && strings.ContainsAny(s.Ref, " ;'\"$`\\") {
		return errdefs.InvalidArgument("ref: %q is not an image reference", s.Ref)
	}
	return nil
}

// Result says what Build did.
type Result struct {
	Ref    string `json:"ref"`
	ID     string `json:"id"`
	Cached bool   `json:"cached"`
}

// Builder builds images into one Docker daemon.
type Builder struct {
	cli *client.Client
	// WorkDir holds the temporary rootfs during a build.
	workDir string
}

// NewBuilder returns a Builder using the environment's Docker daemon.
func NewBuilder(workDir string) (*Builder, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	return &Builder{cli: cli, workDir: workDir}, nil
}

// Exists reports whether ref is present in Docker.
func (b *Builder) Exists(ctx context.Context, ref string) (string, bool, error) {
	img, err := b.cli.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, errdefs.Unavailable("docker daemon: %v", err)
	}
	return img.ID, true, nil
}

// Build makes the image unless it exists. progress receives one line per
// step (debootstrap's own progress lines included); it may be nil.
func (b *Builder) Build(ctx context.Context, spec Spec, progress func(string)) (*Result, error) {
	spec.withDefaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	if id, ok, err := b.Exists(ctx, spec.Ref); err != nil {
		return nil, err
	} else if ok && !spec.Force {
		progress("image " + spec.Ref + " exists: nothing to do")
		return &Result{Ref: spec.Ref, ID: id, Cached: true}, nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return nil, errdefs.FailedPrecondition("debootstrap is not installed on the worker (apt-get install debootstrap)")
	}
	if err := os.MkdirAll(b.workDir, 0o755); err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(b.workDir, "rootfs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	progress(fmt.Sprintf("debootstrap %s (minbase + %s)", spec.Suite, strings.Join(spec.Include, ",")))
	args := []string{"--variant=minbase", "--include=" + strings.Join(spec.Include, ","), spec.Suite, root, spec.Mirror}
	if err := runLogged(ctx, progress, "debootstrap", args...); err != nil {
		return nil, fmt.Errorf("debootstrap: %w", err)
	}
	progress("importing rootfs into docker as " + spec.Ref)
	id, err := b.importDir(ctx, root, spec.Ref)
	if err != nil {
		return nil, err
	}
	progress("built " + spec.Ref)
	return &Result{Ref: spec.Ref, ID: id}, nil
}

// importDir streams dir as a tar into `docker import`.
func (b *Builder) importDir(ctx context.Context, dir, ref string) (string, error) {
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", dir, "-c", ".")
	out, err := tarCmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var stderr strings.Builder
	tarCmd.Stderr = &stderr
	if err := tarCmd.Start(); err != nil {
		return "", err
	}
	rc, err := b.cli.ImageImport(ctx, image.ImportSource{Source: out, SourceName: "-"}, ref, image.ImportOptions{
		Changes: []string{"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CMD [\"/bin/bash\"]"},
	})
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if werr := tarCmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("tar: %w: %s", werr, stderr.String())
	}
	if err != nil {
		return "", fmt.Errorf("docker import: %w", err)
	}
	id, _, err := b.Exists(ctx, ref)
	return id, err
}

// runLogged runs a command, feeding each output line to progress, and returns
// an error carrying the output's tail when it fails.
func runLogged(ctx context.Context, progress func(string), name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			tail = append(tail, line)
			if len(tail) > 10 {
				tail = tail[1:]
			}
			if strings.HasPrefix(line, "I: ") || strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
				progress(line)
			}
		}
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		return errors.Join(err, errors.New(strings.Join(tail, "\n")))
	}
	return nil
}
