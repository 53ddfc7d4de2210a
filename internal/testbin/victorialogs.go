package testbin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// VictoriaLogsVersion is the VictoriaLogs release tests push logs to: a real
// server speaking Loki's push API, built from the Go module proxy.
const VictoriaLogsVersion = "v1.52.1"

// VictoriaLogs is a real victoria-logs process owned by one test, on a
// loopback port with storage in a temporary directory; Stop and Start keep
// the port and the data.
type VictoriaLogs struct {
	// Addr is host:port.
	Addr string
	t    testing.TB
	bin  string
	dir  string
	cmd  *exec.Cmd
}

// victoriaLogsBin builds victoria-logs once per machine into a cache dir
// (go install with GOBIN; about 30 s the first time) and returns its path.
// Test processes building at once wait on a lock and then find it cached.
func victoriaLogsBin(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "aether-testbin-cache", "victoria-logs-"+VictoriaLogsVersion)
	bin := filepath.Join(dir, "victoria-logs")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@"+VictoriaLogsVersion)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	Need(t, "victoria-logs (go install from the module proxy)", func() error {
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}())
	return bin
}

// StartVictoriaLogs starts victoria-logs on a free loopback port; it is
// stopped when the test ends.
func StartVictoriaLogs(t testing.TB) *VictoriaLogs {
	t.Helper()
	v := &VictoriaLogs{Addr: freePort(t), t: t, bin: victoriaLogsBin(t), dir: t.TempDir()}
	v.Start()
	t.Cleanup(v.Stop)
	return v
}

// Start (re)starts the server on the same port and storage and waits until
// it answers /health.
func (v *VictoriaLogs) Start() {
	v.t.Helper()
	v.cmd = exec.Command(v.bin, "-httpListenAddr="+v.Addr, "-storageDataPath="+v.dir, "-retentionPeriod=100y",
		"-loggerLevel=ERROR")
	if err := v.cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + v.Addr + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	v.t.Fatalf("victoria-logs on %s did not become healthy", v.Addr)
}

// Stop stops the server (SIGINT: it flushes its data). Idempotent.
func (v *VictoriaLogs) Stop() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	v.cmd.Process.Signal(syscall.SIGINT)
	v.cmd.Wait()
	v.cmd = nil
}

// PushURL is its Loki-compatible push endpoint.
func (v *VictoriaLogs) PushURL() string { return "http://" + v.Addr + "/insert/loki/api/v1/push" }

// Query runs a LogsQL query (after making everything ingested searchable)
// and returns the matching entries as field maps.
func (v *VictoriaLogs) Query(query string) []map[string]string {
	v.t.Helper()
	if resp, err := http.Get("http://" + v.Addr + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.PostForm("http://"+v.Addr+"/select/logsql/query", url.Values{"query": {query}})
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		v.t.Fatalf("logsql query %q: %s", query, resp.Status)
	}
	var out []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		m := map[string]string{}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			v.t.Fatalf("logsql result %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
