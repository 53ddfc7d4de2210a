package api

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// TestExecStreamWrites checks how an exec's events reach the client: output
// is flushed as it comes (read here while the command still runs), and the
// exit event goes out with the response's end in one write, so a command
// without output is answered in one piece, with a Content-Length (a flushed
// exit event would make it chunked and cost the client a second read).
func TestExecStreamWrites(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	vm := a.vm(t, "r", store.VMRunning)
	release := make(chan struct{})
	a.sb.ExecImpl = func(_ context.Context, _ *store.VM, p *task.ExecParams, eio agentclient.ExecIO) (*store.Execution, error) {
		if p.Command == "talk" {
			eio.Stdout.Write([]byte("hi\n"))
			<-release
		}
		return &store.Execution{ID: "e1"}, nil
	}
	srv := httptest.NewServer(a.s)
	defer srv.Close()
	post := func(command string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/api/v1/vms/"+vm.ID+"/exec", strings.NewReader(`{"command":"`+command+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+a.admin)
		resp, err := srv.Client().Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("exec %s: %v %v", command, resp, err)
		}
		return resp
	}

	resp := post("true")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) != 0 || !strings.Contains(string(body), `"type":"exit"`) {
		t.Errorf("exec without output: Content-Length %d, Transfer-Encoding %q, body %q, %v; want the exit event in one piece",
			resp.ContentLength, resp.TransferEncoding, body, err)
	}

	resp = post("talk")
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n') // before the command ends: output is flushed live
	close(release)
	rest, _ := io.ReadAll(br)
	if err != nil || !strings.Contains(first, `"type":"stdout"`) || !strings.Contains(string(rest), `"type":"exit"`) {
		t.Errorf("exec with output: first event %q (%v), then %q; want stdout while it runs, then exit", first, err, rest)
	}
}
