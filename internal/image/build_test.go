package image_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/testbin"
)

// TestUnprivilegedHasNoHostRights runs a shell the way builds run
// mmdebstrap: it is root inside its namespace and can neither write a
// root-owned host file nor read a root-only one.
func TestUnprivilegedHasNoHostRights(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `id -u; cat "$1" && echo READ; touch /etc/aether-escape && echo WROTE; echo done`, "sh", secret)
	cmd.SysProcAttr = image.Unprivileged()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, err := os.Stat("/etc/aether-escape"); err == nil {
		os.Remove("/etc/aether-escape")
		t.Fatal("the namespaced root wrote /etc/aether-escape on the host")
	}
	got := string(out)
	if !strings.HasPrefix(got, "0\n") || strings.Contains(got, "READ") || strings.Contains(got, "WROTE") || !strings.HasSuffix(got, "done\n") {
		t.Fatalf("want root inside, no host read or write; got:\n%s", got)
	}
}

// TestBuildRunsWithoutHostRoot builds a real image (mmdebstrap from the
// Debian mirror, signatures checked, imported into the real dockerd) with a
// host CA baked in, and watches the build's processes: every one runs as
// image.BuildUID on the host, never as root. The image's files are still
// root's, setuid bits intact, and the CA is trusted inside.
func TestBuildRunsWithoutHostRoot(t *testing.T) {
	t.Parallel()
	testbin.Need(t, "mmdebstrap", lookPath("mmdebstrap"))
	testbin.Need(t, "docker", exec.Command("docker", "version").Run())
	caDir := t.TempDir()
	writeTestCA(t, filepath.Join(caDir, "test.crt"))
	b, err := image.NewBuilder(filepath.Join(caDir, "*.crt"))
	if err != nil {
		t.Fatal(err)
	}
	const ref = "aetherium/test-unprivileged:latest"
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", ref).Run() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	seen := watchUIDs(ctx, "mmdebstrap", "apt-get", "dpkg")
	if _, err := b.Build(ctx, image.Spec{Ref: ref, Include: []string{"ca-certificates"}, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	uids := seen()
	if len(uids) == 0 {
		t.Fatal("saw no build process")
	}
	for comm, uid := range uids {
		if uid != image.BuildUID {
			t.Errorf("%s ran as host uid %d, want %d", comm, uid, image.BuildUID)
		}
	}
	out, err := exec.Command("docker", "run", "--rm", "--entrypoint", "sh", ref, "-c",
		"stat -c '%u %a' /usr/bin/su /etc/passwd; test -e /etc/ssl/certs/aether-host-test.pem && echo ca-trusted").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := "0 4755\n0 644\nca-trusted\n"; string(out) != want {
		t.Fatalf("image contents: got %q, want %q", out, want)
	}
}

func lookPath(name string) error {
	_, err := exec.LookPath(name)
	return err
}

// watchUIDs samples /proc until ctx ends and returns a function giving the
// host uid of each process seen whose name is one of comms (the last seen
// per name, a mismatch kept over a match).
func watchUIDs(ctx context.Context, comms ...string) func() map[string]int {
	var mu sync.Mutex
	seen := map[string]int{}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for comm, uid := range procUIDs(comms) {
				mu.Lock()
				if old, ok := seen[comm]; !ok || old == image.BuildUID {
					seen[comm] = uid
				}
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() map[string]int {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

func procUIDs(comms []string) map[string]int {
	out := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var name string
		uid := -1
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "Name:\t"); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(l, "Uid:\t"); ok {
				uid, _ = strconv.Atoi(strings.Fields(v)[1]) // effective
			}
		}
		for _, c := range comms {
			if name == c && uid >= 0 {
				out[name] = uid
			}
		}
	}
	return out
}

func writeTestCA(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "aether test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
