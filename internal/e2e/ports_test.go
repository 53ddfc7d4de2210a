package e2e_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
)

// startHTTPD starts testdata/httpd.pl in the sandbox on addr:port and waits
// until it answers through the port proxy.
func (e *testEnv) startHTTPD(vm, addr, port string) {
	e.t.Helper()
	script, err := os.ReadFile("testdata/httpd.pl")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.c.PutFile(ctx(e.t), vm, "/srv/httpd.pl", 0o755, strings.NewReader(string(script))); err != nil {
		e.t.Fatal(err)
	}
	if out, code := e.MustExec(vm, "nohup perl /srv/httpd.pl "+addr+" "+port+" >/tmp/httpd.log 2>&1 &"); code != 0 {
		e.t.Fatalf("start httpd: %d %s", code, out)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := e.http().Get("http://" + e.addr + "/api/v1/vms/" + vm + "/ports/" + port + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("httpd in %s never answered on %s: %v", vm, port, err)
		}
	}
}

// TestPortProxy reaches an HTTP service that listens on the sandbox's
// loopback only (so no network path to it exists) through
// /api/v1/vms/{id}/ports/{port}/…: path, query and body arrive; aetherd's
// credentials do not; the service cannot set the session cookie; an upgrade
// is switched and echoes; a closed port is a JSON 503; another project's
// key gets 404; and `aether port-forward` serves the same port locally.
func TestPortProxy(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "web"})
	e.startHTTPD("web", "127.0.0.1", "8000")
	base := "http://" + e.addr + "/api/v1/vms/web/ports/8000"

	req, _ := http.NewRequest(http.MethodPost, base+"/a%2Fb/c?x=1&csrf_token=t", strings.NewReader("hello"))
	req.Header.Set("Content-Type", "text/plain")
	req.AddCookie(&http.Cookie{Name: "aether_session", Value: "the-key"})
	req.AddCookie(&http.Cookie{Name: "app", Value: "2"})
	resp, err := e.http().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "method=POST path=/a%2Fb/c?x=1 auth=none cookie=app=2 host=localhost:8000 body=hello\n"
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Errorf("POST through the proxy = %d %q; want 200 %q", resp.StatusCode, body, want)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 1 || !strings.HasPrefix(got[0], "app=1") {
		t.Errorf("Set-Cookie through the proxy = %q; want only app=1", got)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox") {
		t.Errorf("Content-Security-Policy = %q; want sandbox", csp)
	}

	// An upgrade: raw HTTP/1.1 to aetherd, then bytes both ways.
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /api/v1/vms/web/ports/8000/echo HTTP/1.1\r\nHost: "+e.addr+"\r\nAuthorization: Bearer "+e.key()+
		"\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.Contains(status, "101") {
		t.Fatalf("upgrade answered %q", status)
	}
	for l, _ := br.ReadString('\n'); l != "\r\n" && l != ""; l, _ = br.ReadString('\n') {
	}
	io.WriteString(conn, "ping\n")
	if echo, err := br.ReadString('\n'); echo != "ping\n" {
		t.Errorf("echo through the upgraded connection = %q, %v", echo, err)
	}

	for name, tc := range map[string]struct {
		url    string
		status int
	}{
		"closed port": {"http://" + e.addr + "/api/v1/vms/web/ports/8001/", http.StatusServiceUnavailable},
		"bad port":    {"http://" + e.addr + "/api/v1/vms/web/ports/70000/", http.StatusBadRequest},
		"no sandbox":  {"http://" + e.addr + "/api/v1/vms/nope/ports/8000/", http.StatusNotFound},
	} {
		resp, err := e.http().Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), `"error"`) {
			t.Errorf("%s: %d %s; want %d and a JSON error", name, resp.StatusCode, b, tc.status)
		}
	}

	if _, err := e.c.CreateProject(ctx(t), &apiv1.ProjectRequest{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	k, err := e.c.CreateKey(ctx(t), &apiv1.KeyRequest{Project: "other"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+e.addr+"/api/v1/vms/"+vm.ID+"/ports/8000/", nil)
	req.Header.Set("Authorization", "Bearer "+k.Key)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("another project's key through the proxy: %v %v; want 404", resp, err)
	}
	if _, err := e.c.WithKey(k.Key).DialPort(ctx(t), vm.ID, 8000); !client.IsNotFound(err) {
		t.Errorf("another project's key on the TCP route: %v; want 404", err)
	}

	// aether port-forward: a local port that reaches the sandbox's 8000.
	cmd := exec.Command(e.cli, "port-forward", "web", "0:8000")
	cmd.Env = append(e.cliEnv(), "AETHER_SERVER=http://"+e.addr)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) < 2 || fields[0] != "Forwarding" {
		t.Fatalf("port-forward printed %q, %v", line, err)
	}
	resp, err = http.Get("http://" + fields[1] + "/via-forward")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "method=GET path=/via-forward auth=none") {
		t.Errorf("through port-forward: %q", body)
	}
}

// TestDistributedPtyAndPorts: with an api process in front of a worker,
// a terminal and the port proxy reach the sandbox through the worker's
// internal endpoints (PTY WebSocket and TCP WebSocket).
func TestDistributedPtyAndPorts(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	c.MustCreateVM(&client.CreateVMRequest{Name: "far"})
	term, err := c.c.Pty(ctx(t), "far", &client.PtyOptions{Command: "stty size; read line; echo got=$line; exit 3", Cols: 77, Rows: 11})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	out := watch(term)
	out.waitFor(t, "11 77")
	io.WriteString(term, "hello\r")
	out.waitFor(t, "got=hello")
	out.waitEnd(t)
	if exit, err := term.Wait(); err != nil || *exit.ExitCode != 3 {
		t.Errorf("exit through the api: %+v, %v; want 3", exit, err)
	}

	c.startHTTPD("far", "127.0.0.1", "8000")
	resp, err := c.http().Get("http://" + c.addr + "/api/v1/vms/far/ports/8000/hop?q=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "method=GET path=/hop?q=1 auth=none") {
		t.Errorf("through the api and the worker: %d %q", resp.StatusCode, body)
	}
}
