package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// fakeRegistry is a Registry over fixed workers and loads.
type fakeRegistry struct {
	WorkerListImpl func(ctx context.Context) ([]*store.Worker, error)
	WorkerLoadImpl func(ctx context.Context) (map[string]store.Load, error)
}

func (f *fakeRegistry) WorkerList(ctx context.Context) ([]*store.Worker, error) {
	return f.WorkerListImpl(ctx)
}

func (f *fakeRegistry) WorkerLoad(ctx context.Context) (map[string]store.Load, error) {
	return f.WorkerLoadImpl(ctx)
}

// registry's loads are sandboxes of 512 MiB each.
func registry(workers []*store.Worker, load map[string]int) *fakeRegistry {
	loads := map[string]store.Load{}
	for id, n := range load {
		loads[id] = store.Load{Sandboxes: n, VCPUs: n, MemoryMB: 512 * n}
	}
	return &fakeRegistry{
		WorkerListImpl: func(context.Context) ([]*store.Worker, error) { return workers, nil },
		WorkerLoadImpl: func(context.Context) (map[string]store.Load, error) { return loads, nil },
	}
}

func TestAlive(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		age  time.Duration
		want bool
	}{
		{0, true},
		{29 * time.Second, true},
		{30 * time.Second, true}, // the bound itself is still alive
		{30*time.Second + time.Millisecond, false},
		{time.Hour, false},
	}
	for _, tt := range tests {
		if got := Alive(&store.Worker{HeartbeatAt: now.Add(-tt.age)}, now, 30*time.Second); got != tt.want {
			t.Errorf("Alive(heartbeat %s ago, 30s) = %v, want %v", tt.age, got, tt.want)
		}
	}
}

func TestPlace(t *testing.T) {
	t.Parallel()
	now := time.Now()
	live := func(id string, capacity int) *store.Worker {
		return &store.Worker{ID: id, Capacity: capacity, HeartbeatAt: now}
	}
	dead := &store.Worker{ID: "dead", Capacity: 10, HeartbeatAt: now.Add(-time.Minute)}
	budget := func(id string, vcpus, memMB int) *store.Worker {
		return &store.Worker{ID: id, VCPUs: vcpus, MemoryMB: memMB, HeartbeatAt: now}
	}
	tests := []struct {
		name    string
		workers []*store.Worker
		load    map[string]int
		only    string
		want    string // worker ID, or "" for ErrUnavailable
		wantMsg string
	}{
		{name: "least loaded", workers: []*store.Worker{live("a", 10), live("b", 10)}, load: map[string]int{"a": 3, "b": 1}, want: "b"},
		{name: "dead workers are skipped", workers: []*store.Worker{dead, live("a", 10)}, load: map[string]int{"a": 5}, want: "a"},
		{name: "full workers are skipped", workers: []*store.Worker{live("a", 2), live("b", 10)}, load: map[string]int{"a": 2, "b": 5}, want: "b"},
		{name: "only that worker", workers: []*store.Worker{live("a", 10), live("b", 10)}, load: map[string]int{"a": 5}, only: "a", want: "a"},
		{name: "only a dead worker", workers: []*store.Worker{dead, live("a", 10)}, only: "dead", wantMsg: "worker dead, which holds the template"},
		{name: "nobody has room", workers: []*store.Worker{dead, live("a", 1)}, load: map[string]int{"a": 1}, wantMsg: "no live worker has room"},
		{name: "memory budget", workers: []*store.Worker{budget("a", 0, 2048), budget("b", 0, 4096)}, load: map[string]int{"a": 3, "b": 6}, want: "a"},
		{name: "memory budget full", workers: []*store.Worker{budget("a", 0, 2048), budget("b", 0, 4096)}, load: map[string]int{"a": 4, "b": 8}, wantMsg: "no live worker has room"},
		{name: "vCPU budget", workers: []*store.Worker{budget("a", 3, 0), budget("b", 8, 0)}, load: map[string]int{"a": 3, "b": 7}, want: "b"},
		{name: "no limits", workers: []*store.Worker{budget("a", 0, 0)}, load: map[string]int{"a": 1000}, want: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Place(t.Context(), registry(tt.workers, tt.load), 30*time.Second, tt.only, 1, 512)
			if tt.want == "" {
				if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("Place(only %q) = %v, %v; want unavailable %q", tt.only, got, err, tt.wantMsg)
				}
				return
			}
			if err != nil || got.ID != tt.want {
				t.Errorf("Place(only %q) = %v, %v; want %s", tt.only, got, err, tt.want)
			}
		})
	}
	t.Run("registry errors are returned", func(t *testing.T) {
		t.Parallel()
		down := errdefs.Unavailable("database down")
		r := registry(nil, nil)
		r.WorkerLoadImpl = func(context.Context) (map[string]store.Load, error) { return nil, down }
		if _, err := Place(t.Context(), r, time.Second, "", 1, 512); !errors.Is(err, down) {
			t.Errorf("Place = %v, want %v", err, down)
		}
	})
}

// fakeSandboxes is a Sandboxes whose methods call the Impl fields.
type fakeSandboxes struct {
	ExecImpl    func(ctx context.Context, vm *store.VM, p *task.ExecParams) (*store.Execution, error)
	PutFileImpl func(ctx context.Context, vm *store.VM, path string, r io.Reader) (int64, error)
	Guest       // nil: these tests never call it
}

func (f *fakeSandboxes) Exec(ctx context.Context, vm *store.VM, p *task.ExecParams, _ task.ExecRecord, _ agentclient.ExecIO) (*store.Execution, error) {
	return f.ExecImpl(ctx, vm, p)
}

func (f *fakeSandboxes) PutFile(ctx context.Context, vm *store.VM, path string, _ uint32, r io.Reader) (int64, error) {
	return f.PutFileImpl(ctx, vm, path, r)
}

func (f *fakeSandboxes) GetFile(context.Context, *store.VM, string) (*task.File, error) {
	return nil, errors.New("not faked")
}

func (f *fakeSandboxes) Console(context.Context, *store.VM, int) ([]byte, error) {
	return nil, errors.New("not faked")
}

func (f *fakeSandboxes) Pty(context.Context, *store.VM, *agentproto.PtyRequest) (Terminal, error) {
	return nil, errors.New("not faked")
}

func (f *fakeSandboxes) Dial(context.Context, *store.VM, int) (net.Conn, error) {
	return nil, errors.New("not faked")
}

// owner serves a worker's internal file endpoint: it stores uploads after
// checking the token, and answers 409 for sandbox "paused".
func owner(t *testing.T, token string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/internal/v1/vms/") {
			http.NotFound(w, r)
			return
		}
		if strings.Contains(r.URL.Path, "/paused/") {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error":{"code":"failed_precondition","message":"sandbox paused is paused"}}`)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, `{"path":%q,"size":%d}`, r.URL.Query().Get("path"), n)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRouter checks where each sandbox call goes: in process for this
// worker's sandboxes, to the owner's internal endpoint otherwise, and an
// unavailable error (never a hang or a wrong host) when the owner cannot be
// reached.
func TestRouter(t *testing.T) {
	t.Parallel()
	srv := owner(t, "secret")
	now := time.Now()
	workers := []*store.Worker{
		{ID: "w1", Address: "unused", HeartbeatAt: now},
		{ID: "w2", Address: strings.TrimPrefix(srv.URL, "http://"), HeartbeatAt: now},
		{ID: "w3", Address: "127.0.0.1:1", HeartbeatAt: now.Add(-time.Hour)},
	}
	tests := []struct {
		name    string
		local   bool // the process runs worker w1
		token   string
		vm      store.VM
		want    string // "local", "remote" or an error substring
		wantErr error
	}{
		{name: "own sandbox", local: true, token: "secret", vm: store.VM{ID: "a", WorkerID: "w1"}, want: "local"},
		{name: "unplaced sandbox", local: true, token: "secret", vm: store.VM{ID: "a"}, want: "local"},
		{name: "another worker's sandbox", local: true, token: "secret", vm: store.VM{ID: "b", WorkerID: "w2"}, want: "remote"},
		{name: "api-only process", token: "secret", vm: store.VM{ID: "b", WorkerID: "w2"}, want: "remote"},
		{name: "owner's error class survives", token: "secret", vm: store.VM{ID: "paused", Name: "paused", WorkerID: "w2"},
			want: "sandbox paused is paused", wantErr: errdefs.ErrFailedPrecondition},
		{name: "dead owner", local: true, token: "secret", vm: store.VM{ID: "c", Name: "c", WorkerID: "w3"},
			want: "not heartbeating", wantErr: errdefs.ErrUnavailable},
		{name: "unknown owner", token: "secret", vm: store.VM{ID: "d", WorkerID: "w9"}, want: "not registered", wantErr: errdefs.ErrUnavailable},
		{name: "no token", local: true, vm: store.VM{ID: "b", Name: "b", WorkerID: "w2"}, want: "set internal_token", wantErr: errdefs.ErrUnavailable},
		{name: "wrong token", token: "guess", vm: store.VM{ID: "b", WorkerID: "w2"}, want: "unauthorized", wantErr: errdefs.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := RouterConfig{Token: tt.token, DeadAfter: 30 * time.Second}
			if tt.local {
				cfg.LocalID = "w1"
				cfg.Local = &fakeSandboxes{PutFileImpl: func(_ context.Context, _ *store.VM, _ string, r io.Reader) (int64, error) {
					return -1, nil // marks the local path
				}}
			}
			r := NewRouter(cfg, registry(workers, nil))
			n, err := r.PutFile(t.Context(), &tt.vm, "/x", 0o644, strings.NewReader("hello"))
			got := map[int64]string{-1: "local", 5: "remote"}[n]
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(strings.ToLower(err.Error()), tt.want) {
					t.Errorf("PutFile(%+v) = %d, %v; want %v with %q", tt.vm, n, err, tt.wantErr, tt.want)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("PutFile(%+v) went %q (%d, %v), want %s", tt.vm, got, n, err, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want error
	}{
		{&client.Error{Status: http.StatusNotFound, Message: "m"}, errdefs.ErrNotFound},
		{&client.Error{Status: http.StatusBadRequest, Message: "m"}, errdefs.ErrInvalidArgument},
		{&client.Error{Status: http.StatusConflict, Message: "m"}, errdefs.ErrFailedPrecondition},
		{&client.Error{Status: http.StatusNotImplemented, Message: "m"}, errdefs.ErrNotImplemented},
		{&client.Error{Status: http.StatusGatewayTimeout, Message: "m"}, errdefs.ErrUnavailable},
		{&client.Error{Status: http.StatusInternalServerError, Message: "m"}, errdefs.ErrUnavailable},
		{errors.New("connection refused"), errdefs.ErrUnavailable},
	}
	for _, tt := range tests {
		if got := classify(tt.err); !errors.Is(got, tt.want) {
			t.Errorf("classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
