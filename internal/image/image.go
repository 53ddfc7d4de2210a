// Package image builds sandbox images locally, since no registry is assumed
// reachable: a Debian rootfs from mmdebstrap, run as root of a user namespace
// (never host root), streamed into `docker import`. Builds
// are cached: an image whose io.aetherium.spec label matches the spec (and
// the CA certificates baked in) is not built again unless forced.
//
// The builder bakes the host's locally added CA certificates into every image
// (Debian's /usr/local/share/ca-certificates by default), so sandboxes can
// reach registries through the same TLS-inspecting proxy the host trusts.
// They come from the operator's configuration, never from API callers.
package image

import (
	"bytes"
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
	"syscall"

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
	// caFiles are PEM files baked into every image as trusted roots.
	caFiles []string
}

// NewBuilder returns a Builder using the environment's Docker daemon. caGlob
// selects the host CA certificates to bake in ("" means DefaultCAGlob; "-"
// means none).
func NewBuilder(caGlob string) (*Builder, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	b := &Builder{cli: cli}
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
// step (mmdebstrap's own progress lines included); it may be nil. The spec's
// values become mmdebstrap arguments: callers pass one validated as
// task.ImageBuildArgs (the image:build task's args, the only way builds are
// requested).
//
// The build never runs as host root: mmdebstrap runs as root of a user
// namespace whose ids map to BuildUID and up on the host, so maintainer
// scripts cannot touch the host's files (see unprivileged). Its tarball is
// streamed into `docker import`; no rootfs is left on the host.
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
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return nil, errdefs.FailedPrecondition("mmdebstrap is not installed on the worker (apt-get install mmdebstrap)")
	}
	scratch, err := newScratch()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	cas, err := b.stageCAs(scratch)
	if err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("mmdebstrap %s (minbase + %s), unprivileged", spec.Suite, strings.Join(spec.Include, ",")))
	cmd := exec.CommandContext(ctx, "mmdebstrap", mmdebstrapArgs(spec, cas)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + scratch, "TMPDIR=" + scratch}
	cmd.Dir = scratch
	cmd.SysProcAttr = unprivileged()
	progress("importing rootfs into docker as " + spec.Ref)
	id, err := b.importTar(ctx, cmd, progress, spec.Ref, hash)
	if err != nil {
		return nil, err
	}
	progress("built " + spec.Ref)
	return &Result{Ref: spec.Ref, ID: id}, nil
}

// BuildUID is the first host uid (and gid) of the user namespace builds run
// in; the namespace maps its ids 0…65535 to BuildUID…BuildUID+65535, a range
// no host account uses (Firecracker's jails start at 100000).
const BuildUID = 1_000_000_000

// unprivileged runs a command as root of a new user namespace (with its own
// mount and pid namespaces, so the build's mounts and processes end with it)
// whose ids are BuildUID and up on the host: it can chroot and mount inside
// its build, and has no rights over anything the host owns.
func unprivileged() *syscall.SysProcAttr {
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: BuildUID, Size: 65536}}
	return &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		UidMappings:                ids,
		GidMappings:                ids,
		GidMappingsEnableSetgroups: true,
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0},
		Pdeathsig:                  syscall.SIGKILL,
	}
}

// newScratch makes the build's temporary directory, owned by the build's
// root. It lives in the system's temp dir, since the data dir is closed to
// other uids.
func newScratch() (string, error) {
	dir, err := os.MkdirTemp("", "aether-build-")
	if err != nil {
		return "", err
	}
	if err := os.Chown(dir, BuildUID, BuildUID); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// mmdebstrapArgs builds a minbase tarball on stdout. Signatures are always
// checked against Keyring (apt refuses an unsigned or wrongly signed
// archive). cas are CA files to add to the image's trust store.
func mmdebstrapArgs(spec Spec, cas []string) []string {
	args := []string{"--mode=root", "--variant=minbase", "--format=tar", "--keyring=" + Keyring,
		"--include=" + strings.Join(spec.Include, ",")}
	for _, f := range cas {
		args = append(args, "--customize-hook=upload "+f+" /usr/local/share/ca-certificates/"+filepath.Base(f))
	}
	if len(cas) > 0 {
		args = append(args, `--customize-hook=chroot "$1" update-ca-certificates`)
	}
	return append(args, spec.Suite, "-", spec.Mirror)
}

// stageCAs copies the host CA files into scratch, readable by the build's
// uid, and returns their paths there.
func (b *Builder) stageCAs(scratch string) ([]string, error) {
	var out []string
	for _, f := range b.caFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dst := filepath.Join(scratch, "aether-host-"+filepath.Base(f))
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return nil, err
		}
		out = append(out, dst)
	}
	return out, nil
}

// importTar runs cmd, which writes a rootfs tarball to its stdout and its
// progress to stderr, and streams the tarball into `docker import`.
func (b *Builder) importTar(ctx context.Context, cmd *exec.Cmd, progress func(string), ref, hash string) (string, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	tail := &lineTail{progress: progress}
	cmd.Stderr = tail
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("mmdebstrap: %w", err)
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
	if err != nil {
		cmd.Process.Kill()
	}
	if werr := cmd.Wait(); werr != nil {
		return "", errors.Join(fmt.Errorf("mmdebstrap: %w", werr), errors.New(tail.String()))
	}
	if err != nil {
		return "", fmt.Errorf("docker import: %w", err)
	}
	id, _, err := b.Exists(ctx, ref, "")
	return id, err
}

// lineTail is a command's stderr: it passes apt/mmdebstrap's "I:", "W:"
// and "E:" lines to progress and keeps the last ten lines for the error.
// Lines are cut at 4 KiB.
type lineTail struct {
	progress func(string)
	partial  []byte
	tail     []string
}

func (t *lineTail) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.partial = append(t.partial, p[:min(len(p), 4096-len(t.partial))]...)
			break
		}
		t.partial = append(t.partial, p[:min(i, 4096-len(t.partial))]...)
		t.line(string(t.partial))
		t.partial, p = t.partial[:0], p[i+1:]
	}
	return n, nil
}

func (t *lineTail) line(l string) {
	if t.tail = append(t.tail, l); len(t.tail) > 10 {
		t.tail = t.tail[1:]
	}
	if strings.HasPrefix(l, "I: ") || strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
		t.progress(l)
	}
}

func (t *lineTail) String() string {
	return strings.Join(append(t.tail, string(t.partial)), "\n")
}
