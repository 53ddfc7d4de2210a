// Package image builds sandbox images locally, since no registry is assumed
// reachable: a Debian rootfs from debootstrap, imported into Docker. Builds
// are cached: an image whose io.aetherium.spec label matches the spec (and
// the CA certificates baked in) is not built again unless forced.
//
// The builder bakes the host's locally added CA certificates into every image
// (Debian's /usr/local/share/ca-certificates by default), so sandboxes can
// reach registries through the same TLS-inspecting proxy the host trusts.
// They come from the operator's configuration, never from API callers.
package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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
	// Requests may not set it (see Validate).
	Mirror string `json:"mirror,omitempty"`
	// Force rebuilds even when the image exists.
	Force bool `json:"force"`
}

// withDefaults fills in the defaults; Build calls it after Validate, so
// the mirror is always the server's.
func (s *Spec) withDefaults() {
	if s.Ref == "" {
		s.Ref = DefaultRef
	}
	if s.Suite == "" {
		s.Suite = "bookworm"
	}
	if s.Include == nil {
		// unzip and xz-utils let tool recipes unpack downloads without apt.
		s.Include = []string{"ca-certificates", "git", "curl", "unzip", "xz-utils"}
	}
	if s.Mirror == "" {
		s.Mirror = "http://deb.debian.org/debian"
	}
}

// Keyring verifies the Debian archive's signatures during builds.
const Keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// Result says what Build did.
type Result struct {
	Ref    string `json:"ref"`
	ID     string `json:"id"`
	Cached bool   `json:"cached"`
}

// LabelSpec is the image label holding the hash of what an image was built
// from; a different hash means the cached image is stale.
const LabelSpec = "io.aetherium.spec"

// DefaultCAGlob is where Debian keeps locally added CA certificates.
const DefaultCAGlob = "/usr/local/share/ca-certificates/*.crt"

// Builder builds images into one Docker daemon.
type Builder struct {
	cli *client.Client
	// workDir holds the temporary rootfs during a build.
	workDir string
	// caFiles are PEM files baked into every image as trusted roots.
	caFiles []string
}

// NewBuilder returns a Builder using the environment's Docker daemon. caGlob
// selects the host CA certificates to bake in ("" means DefaultCAGlob; "-"
// means none).
func NewBuilder(workDir, caGlob string) (*Builder, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	b := &Builder{cli: cli, workDir: workDir}
	if caGlob == "" {
		caGlob = DefaultCAGlob
	}
	if caGlob != "-" {
		if b.caFiles, err = filepath.Glob(caGlob); err != nil {
			return nil, fmt.Errorf("ca certificates %q: %w", caGlob, err)
		}
		sort.Strings(b.caFiles)
	}
	return b, nil
}

// specHash identifies what an image is built from: the spec and the
// contents of the CA files.
func (b *Builder) specHash(spec Spec) (string, error) {
	h := sha256.New()
	json.NewEncoder(h).Encode(struct {
		Suite, Mirror string
		Include       []string
	}{spec.Suite, spec.Mirror, spec.Include})
	for _, f := range b.caFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Exists reports whether ref is present in Docker and, when hash is not
// empty, was built from that spec hash.
func (b *Builder) Exists(ctx context.Context, ref, hash string) (string, bool, error) {
	img, err := b.cli.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, errdefs.Unavailable("docker daemon: %v", err)
	}
	if hash != "" && (img.Config == nil || img.Config.Labels[LabelSpec] != hash) {
		return img.ID, false, nil
	}
	return img.ID, true, nil
}

// Build makes the image unless it exists. progress receives one line per
// step (debootstrap's own progress lines included); it may be nil. The spec's
// values become debootstrap arguments: callers pass one validated as
// task.ImageBuildArgs (the image:build task's args, the only way builds are
// requested).
func (b *Builder) Build(ctx context.Context, spec Spec, progress func(string)) (*Result, error) {
	spec.withDefaults()
	if progress == nil {
		progress = func(string) {}
	}
	hash, err := b.specHash(spec)
	if err != nil {
		return nil, err
	}
	if id, ok, err := b.Exists(ctx, spec.Ref, hash); err != nil {
		return nil, err
	} else if ok && !spec.Force {
		progress("image " + spec.Ref + " is up to date: nothing to do")
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
	// Signatures are always checked: a build that cannot verify the archive fails.
	args := []string{"--variant=minbase", "--keyring=" + Keyring, "--force-check-gpg",
		"--include=" + strings.Join(spec.Include, ","), spec.Suite, root, spec.Mirror}
	if err := runLogged(ctx, progress, "debootstrap", args...); err != nil {
		return nil, fmt.Errorf("debootstrap: %w", err)
	}
	if err := b.installCAs(ctx, root); err != nil {
		return nil, err
	}
	progress("importing rootfs into docker as " + spec.Ref)
	id, err := b.importDir(ctx, root, spec.Ref, hash)
	if err != nil {
		return nil, err
	}
	progress("built " + spec.Ref)
	return &Result{Ref: spec.Ref, ID: id}, nil
}

// importDir streams dir as a tar into `docker import`.
func (b *Builder) importDir(ctx context.Context, dir, ref, hash string) (string, error) {
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
		Changes: []string{
			"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			// Node.js and Bun read only their own CA list unless told.
			"ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
			"LABEL " + LabelSpec + "=" + hash,
			"CMD [\"/bin/bash\"]",
		},
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
	id, _, err := b.Exists(ctx, ref, "")
	return id, err
}

// installCAs copies the host CA files into the rootfs and rebuilds its bundle.
func (b *Builder) installCAs(ctx context.Context, root string) error {
	if len(b.caFiles) == 0 {
		return nil
	}
	dir := filepath.Join(root, "usr/local/share/ca-certificates")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range b.caFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "aether-host-"+filepath.Base(f)), data, 0o644); err != nil {
			return err
		}
	}
	if out, err := exec.CommandContext(ctx, "chroot", root, "update-ca-certificates").CombinedOutput(); err != nil {
		return fmt.Errorf("update-ca-certificates in the image: %v: %s", err, out)
	}
	return nil
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
