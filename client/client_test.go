package client

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
)

// TestRetries checks which calls are sent again. The server is a stand-in
// that answers with scripted statuses: a real aetherd cannot be made to
// answer 503 on demand (the SDK suites in internal/e2e meet real 429s).
func TestRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		method   string
		statuses []int // answered in order, then 200
		retry    string
		wantErr  bool
		attempts int32
	}{
		{name: "GET after 503s", method: http.MethodGet, statuses: []int{503, 503}, attempts: 3},
		{name: "GET gives up", method: http.MethodGet, statuses: []int{503, 503, 503, 503}, wantErr: true, attempts: 3},
		{name: "GET 404 is an answer", method: http.MethodGet, statuses: []int{404}, wantErr: true, attempts: 1},
		{name: "POST 503 is not retried", method: http.MethodPost, statuses: []int{503}, wantErr: true, attempts: 1},
		{name: "POST 429 is retried", method: http.MethodPost, statuses: []int{429}, retry: "0", attempts: 2},
		{name: "DELETE after 503", method: http.MethodDelete, statuses: []int{503}, attempts: 2},
		{name: "429 without Retry-After is an answer", method: http.MethodPost, statuses: []int{429}, wantErr: true, attempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				if i < len(tc.statuses) {
					if tc.retry != "" {
						w.Header().Set("Retry-After", tc.retry)
					}
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tc.statuses[i])
					w.Write([]byte(`{"error":{"code":"scripted","message":"scripted failure"}}`))
					return
				}
				w.Write([]byte(`{}`))
			}))
			defer srv.Close()
			c, _ := New(srv.URL, nil)
			var in any
			if tc.method == http.MethodPost {
				in = map[string]string{"name": "x"}
			}
			err := c.doJSON(t.Context(), tc.method, "/api/v1/x", in, nil)
			if (err != nil) != tc.wantErr || n.Load() != tc.attempts {
				t.Errorf("%s: err %v after %d attempts; want error %v after %d", tc.method, err, n.Load(), tc.wantErr, tc.attempts)
			}
		})
	}
}

// TestErrorRetryAfter: an error answer's Retry-After reaches the caller
// (the CLI prints it), and an answer without one leaves it 0.
func TestErrorRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{{"9", 9 * time.Second}, {"", 0}, {"soon", 0}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.header != "" {
				w.Header().Set("Retry-After", tc.header)
			}
			w.WriteHeader(http.StatusServiceUnavailable) // POST: not retried
			w.Write([]byte(`{"error":{"code":"unavailable","message":"busy"}}`))
		}))
		c, _ := New(srv.URL, nil)
		err := c.doJSON(t.Context(), http.MethodPost, "/api/v1/x", map[string]string{}, nil)
		srv.Close()
		var e *Error
		if !errors.As(err, &e) || e.RetryAfter != tc.want || e.Code != "unavailable" {
			t.Errorf("Retry-After %q: %#v; want RetryAfter %s", tc.header, err, tc.want)
		}
	}
}

// TestExecReusesConnection: sequential execs share one kept-alive
// connection. Regression: Exec returned at the end event without reading
// the response's last chunk, so closing the body closed the connection and
// every exec paid a new one (a TLS handshake over https) whenever that
// chunk had not arrived with the event. The server is a stand-in streaming
// like aetherd's exec (NDJSON events, each flushed), which cannot be made
// to hold the last chunk back on demand.
func TestExecReusesConnection(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Write([]byte(`{"type":"stdout","data":"aGkK"}` + "\n"))
		w.(http.Flusher).Flush()
		w.Write([]byte(`{"type":"exit","exit_code":0}` + "\n"))
		w.(http.Flusher).Flush()
		// The last chunk comes a moment after the exit event, as when
		// aetherd's handler still has work after sending it.
		time.Sleep(20 * time.Millisecond)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, _ := New(srv.URL, nil)
	for range 5 {
		var out strings.Builder
		exit, err := c.Exec(t.Context(), "vm", &apiv1.ExecRequest{Command: "echo hi"}, nil, &out, nil)
		if err != nil || exit.ExitCode == nil || *exit.ExitCode != 0 || out.String() != "hi\n" {
			t.Fatalf("exec: %+v %q %v", exit, out.String(), err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 sequential execs opened %d connections, want 1", n)
	}
}
