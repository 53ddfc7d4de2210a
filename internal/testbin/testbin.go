// Package testbin builds the project's binaries and finds the real services
// (dockerd, images) that integration tests need. Only tests import it.
//
// A missing service skips the test with a one-line reason, unless
// AETHER_REQUIRE_SERVICES=1 (set by CI), where it fails instead: CI must never
// pass by skipping.
package testbin

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aetherium/aetherium/internal/image"
)

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// Root returns the module's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build compiles ./cmd/<name> (or, for a name with a slash, that package
// path) statically (CGO off) once per test process and
// returns the binary's path. Building aether-agent builds aether-waiter
// beside it too.
func Build(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "aether-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out, pkg := filepath.Join(buildDir, filepath.Base(name)), "./cmd/"+name
	if strings.Contains(name, "/") {
		pkg = "./" + name // a test helper program elsewhere in the module
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if name == "aether-agent" {
		// The Docker runtime finds aether-waiter beside the agent (as
		// `make build` puts it), and its agents go dormant with it.
		waiter := exec.Command("make", "--no-print-directory", "-s", "waiter", "BIN="+buildDir)
		waiter.Dir = Root()
		if b, err := waiter.CombinedOutput(); err != nil {
			t.Fatalf("build aether-waiter (gcc and libc6-dev, see scripts/setup.sh): %v\n%s", err, b)
		}
	}
	cmd.Dir = Root()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	built[name] = out
	return out
}

// Need skips (or, under AETHER_REQUIRE_SERVICES=1, fails) the test when err
// says a required service is missing.
func Need(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("AETHER_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s required but unavailable: %v", what, err)
	}
	t.Skipf("skipping: %s unavailable: %v", what, err)
}

var (
	imageOnce sync.Once
	imageErr  error
)

// BaseImage makes sure the default sandbox image exists in the local Docker
// daemon, building it with the real image builder (mmdebstrap) the first
// time, and returns its reference. It skips or fails the test via Need.
func BaseImage(t testing.TB) string {
	t.Helper()
	imageOnce.Do(func() {
		// Test packages run as parallel processes: one builds, the others
		// wait on the lock and then find the image cached.
		lock, err := os.OpenFile(filepath.Join(os.TempDir(), "aether-image-build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			imageErr = err
			return
		}
		defer lock.Close()
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			imageErr = err
			return
		}
		b, err := image.NewBuilder("")
		if err != nil {
			imageErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		_, imageErr = b.Build(ctx, image.Spec{}, nil)
	})
	Need(t, "docker with the base image", imageErr)
	return image.DefaultRef
}

// PostgresURL returns the URL of a fresh, empty schema in the test PostgreSQL
// server (AETHER_TEST_POSTGRES_URL, default the role and database that
// scripts/setup.sh creates). The schema is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("AETHER_TEST_POSTGRES_URL")
	if base == "" {
		base = "postgres://aether:aether@127.0.0.1:5432/aether_test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	Need(t, "postgres", err)
	defer conn.Close(context.Background())
	schema := fmt.Sprintf("t_%d_%d", time.Now().UnixNano(), rand.IntN(1<<30))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
