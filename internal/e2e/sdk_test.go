package e2e_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// sdkConfig gives the SDK suites' aetherd a low default rate, so their
// retry tests meet real 429s (with Retry-After) on a burst of reads.
const sdkConfig = "api:\n  rate_limits:\n    default: {per_second: 20, burst: 20}\n"

// TestSDKs runs the Python (sdk/python, Debian's pytest) and TypeScript
// (sdk/typescript, node --test after its tsc build) suites against one real
// aetherd on Docker, with AETHER_URL and an admin AETHER_API_KEY. Each
// suite covers the session API, streaming exec with stdin, files,
// templates, events, typed errors and retries; a failing case fails this
// test with the suite's output.
func TestSDKs(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("/usr/bin/python3")
	if err != nil || exec.Command(python, "-m", "pytest", "--version").Run() != nil {
		t.Fatal("python3 with pytest is missing: run scripts/setup.sh (installs python3-pytest)")
	}
	root := repoRoot(t)
	ts := filepath.Join(root, "sdk", "typescript")
	if _, err := os.Stat(filepath.Join(ts, "node_modules", ".bin", "tsc")); err != nil {
		t.Fatal("sdk/typescript has no node_modules: run scripts/setup.sh (npm ci there)")
	}
	e := newEnv(t)
	e.proc = e.add("--runtime", "docker", "--config", writeConfig(t, sdkConfig))
	e.connect(e.proc)
	e.start()
	env := append(os.Environ(), "AETHER_URL=http://"+e.addr, "AETHER_API_KEY="+e.key(), "PYTHONDONTWRITEBYTECODE=1")

	t.Run("python", func(t *testing.T) {
		runSuite(t, env, filepath.Join(root, "sdk", "python"), python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
	})
	t.Run("typescript", func(t *testing.T) {
		runSuite(t, env, ts, "npm", "run", "--silent", "build")
		runSuite(t, env, ts, "node", "--test", "--test-concurrency=1", "--test-timeout=120000", "test/")
	})
}

// runSuite runs a suite's command in dir and fails the test, with its output,
// if it fails.
func runSuite(t testing.TB, env []string, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v in %s: %v\n%s", name, args, dir, err, out)
	}
	t.Logf("%s %v:\n%s", name, args, out)
}

// repoRoot is the repository's top directory (this file is internal/e2e/).
func repoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BenchmarkSDKExecRoundTrip runs each SDK's exec round-trip script against
// one aetherd on Docker (exec rate limit off): N execs of `true` through the
// SDK and N through raw HTTP (http.client / fetch) on a kept-alive
// connection, interleaved in the same run. It reports each p50 in ms.
// AETHER_BENCH_SDK_EXECS sets N (default 200).
func BenchmarkSDKExecRoundTrip(b *testing.B) {
	root := repoRoot(b)
	e := newEnv(b)
	e.proc = e.add("--runtime", "docker", "--config", writeConfig(b, "api:\n  rate_limits:\n    exec: {per_second: 0}\n"))
	e.connect(e.proc)
	e.start()
	env := append(os.Environ(), "AETHER_URL=http://"+e.addr, "AETHER_API_KEY="+e.key(), "PYTHONDONTWRITEBYTECODE=1")
	n := cmp.Or(os.Getenv("AETHER_BENCH_SDK_EXECS"), "200")
	ts := filepath.Join(root, "sdk", "typescript")
	runSuite(b, env, ts, "npm", "run", "--silent", "build")
	for b.Loop() {
		for _, s := range []struct{ lang, dir, name, script string }{
			{"python", filepath.Join(root, "sdk", "python"), "/usr/bin/python3", "bench/exec_roundtrip.py"},
			{"typescript", ts, "node", "bench/exec_roundtrip.mjs"},
		} {
			cmd := exec.Command(s.name, s.script, n)
			cmd.Dir, cmd.Env = s.dir, env
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("%s %s: %v\n%s", s.name, s.script, err, out)
			}
			var r struct {
				N        int `json:"n"`
				SDK, Raw struct {
					P50  float64 `json:"p50_ms"`
					P99  float64 `json:"p99_ms"`
					Mean float64 `json:"mean_ms"`
				}
			}
			if err := json.Unmarshal(out, &r); err != nil {
				b.Fatalf("%s: %v: %s", s.script, err, out)
			}
			b.ReportMetric(r.SDK.P50, s.lang+"-sdk-p50-ms")
			b.ReportMetric(r.Raw.P50, s.lang+"-raw-p50-ms")
			b.Logf("%s", bytes.TrimSpace(out))
		}
	}
}
