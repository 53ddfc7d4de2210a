package e2e_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/testbin"
)

// waitLogs polls the log query until pred holds on a page: records are
// written asynchronously, so this is a readiness deadline.
func (e *testEnv) waitLogs(q apiv1.LogQuery, pred func([]apiv1.LogRecord) bool) []apiv1.LogRecord {
	e.t.Helper()
	var recs []apiv1.LogRecord
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		page, err := e.c.QueryLogs(ctx(e.t), &q)
		if err != nil {
			e.t.Fatal(err)
		}
		if recs = page.Records; pred(recs) {
			return recs
		}
	}
	e.t.Fatalf("log query %+v: condition not met; last page %+v", q, recs)
	return nil
}

func lines(recs []apiv1.LogRecord) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.Stream + ":" + r.Line + "\n")
	}
	return b.String()
}

// TestLogsEndToEnd: a real aetherd with the Loki provider pointed at a real
// VictoriaLogs. An exec's output lines, the sandbox's lifecycle and the
// task's progress become records that the API, the CLI (also following)
// and VictoriaLogs all see.
func TestLogsEndToEnd(t *testing.T) {
	t.Parallel()
	vl := testbin.StartVictoriaLogs(t)
	cfg := filepath.Join(t.TempDir(), "aetherd.yaml")
	os.WriteFile(cfg, []byte("logging:\n  max_line_bytes: 100\n  providers: [loki]\n  loki:\n    url: "+vl.PushURL()+
		"\n    batch_wait: 20ms\n    labels: {service: aetherium-e2e}\n"), 0o644)
	e := newEnv(t)
	e.proc = e.add("--runtime", "docker", "--config", cfg)
	e.connect(e.proc)
	e.start()

	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "logs"})
	out, code := e.MustExec(vm.Name, "echo first; echo oops >&2; head -c 300 /dev/zero | tr '\\0' x; echo; printf last")
	if code != 0 {
		t.Fatalf("exec: %d %s", code, out)
	}
	recs := e.waitLogs(apiv1.LogQuery{VMID: vm.Name, Direction: "forward"}, func(r []apiv1.LogRecord) bool {
		return strings.Contains(lines(r), "stdout:last")
	})
	got := lines(recs)
	for _, want := range []string{"lifecycle:sandbox running", "stdout:first\n", "stderr:oops\n", "stdout:" + strings.Repeat("x", 100) + "\n", "stdout:last\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("records lack %q:\n%s", want, got)
		}
	}
	for _, r := range recs {
		if strings.HasPrefix(r.Line, "xxx") && !r.Truncated {
			t.Errorf("long line not marked truncated: %+v", r)
		}
		if r.Stream == "stdout" && (r.ExecutionID == "" || r.VMID != vm.ID || r.Project == "") {
			t.Errorf("exec record without its labels: %+v", r)
		}
	}
	e.waitLogs(apiv1.LogQuery{Stream: "task"}, func(r []apiv1.LogRecord) bool {
		return strings.Contains(lines(r), "task vm:create succeeded")
	})

	// The CLI: the last records, and following new ones.
	cliOut, code := e.aether("", "logs", vm.Name, "-n", "2")
	if code != 0 || !strings.Contains(cliOut, "last") || strings.Contains(cliOut, "first") {
		t.Errorf("aether logs -n 2: %d\n%s", code, cliOut)
	}
	follow := exec.Command(e.cli, "logs", vm.Name, "-f", "-n", "0", "--stream", "stdout")
	follow.Env = append(e.cliEnv(), "AETHER_SERVER=http://"+e.addr)
	pipe, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { follow.Process.Kill(); follow.Wait() }()
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "followed") {
				found <- true
				return
			}
		}
		found <- false
	}()
	// The follower may not be subscribed yet: print until it sees a line.
	for deadline := time.Now().Add(time.Minute); ; {
		e.MustExec(vm.Name, "echo followed")
		select {
		case ok := <-found:
			if !ok {
				t.Fatal("aether logs -f ended without the new line")
			}
		case <-time.After(500 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("aether logs -f never printed the new line")
		}
		break
	}

	// VictoriaLogs received the same records, IDs as fields, not labels.
	var entries []map[string]string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if entries = vl.Query(`_stream:{service="aetherium-e2e"} AND "oops"`); len(entries) > 0 {
			break
		}
	}
	if len(entries) != 1 || entries[0]["vm_id"] != vm.ID || strings.Contains(entries[0]["_stream"], vm.ID) {
		t.Errorf("VictoriaLogs entries %v: want the stderr line with vm_id as a field", entries)
	}
}
