package api

import (
	"errors"
	"net/url"
	"testing"

	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// recordingTerminal is a cluster.Terminal that records controls.
type recordingTerminal struct {
	resized [2]uint16
	signal  int
}

func (f *recordingTerminal) Read([]byte) (int, error)        { return 0, errors.New("not faked") }
func (f *recordingTerminal) Write(p []byte) (int, error)     { return len(p), nil }
func (f *recordingTerminal) Resize(c, r uint16) error        { f.resized = [2]uint16{c, r}; return nil }
func (f *recordingTerminal) Signal(sig int) error            { f.signal = sig; return nil }
func (f *recordingTerminal) Wait() (*agentproto.Exit, error) { return nil, errors.New("not faked") }
func (f *recordingTerminal) Close() error                    { return nil }

// TestPtyControl: the text messages of the PTY WebSocket reach the terminal
// only when valid; anything else is InvalidArgument.
func TestPtyControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		msg        string
		wantErr    bool
		wantResize [2]uint16
		wantSignal int
	}{
		{name: "resize", msg: `{"type":"resize","cols":120,"rows":40}`, wantResize: [2]uint16{120, 40}},
		{name: "signal by name", msg: `{"type":"signal","signal":"SIGINT"}`, wantSignal: 2},
		{name: "signal short name", msg: `{"type":"signal","signal":"TERM"}`, wantSignal: 15},
		{name: "resize too big", msg: `{"type":"resize","cols":1001,"rows":40}`, wantErr: true},
		{name: "resize zero", msg: `{"type":"resize","cols":0,"rows":40}`, wantErr: true},
		{name: "unknown signal", msg: `{"type":"signal","signal":"SIGSEGV"}`, wantErr: true},
		{name: "unknown type", msg: `{"type":"exit"}`, wantErr: true},
		{name: "not JSON", msg: `ls`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term := &recordingTerminal{}
			err := ptyControl(term, []byte(tt.msg))
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, errdefs.ErrInvalidArgument)) {
				t.Fatalf("ptyControl(%s) = %v, want error %v", tt.msg, err, tt.wantErr)
			}
			if term.resized != tt.wantResize || term.signal != tt.wantSignal {
				t.Errorf("ptyControl(%s): resized %v signal %d; want %v %d", tt.msg, term.resized, term.signal, tt.wantResize, tt.wantSignal)
			}
		})
	}
}

func TestPtyRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		query    string
		wantArgv []string
		wantErr  bool
	}{
		{name: "default login shell", query: "", wantArgv: loginShell},
		{name: "cmd", query: "cmd=ls+-l", wantArgv: []string{"/bin/sh", "-c", "ls -l"}},
		{name: "argv", query: "argv=top&argv=-b", wantArgv: []string{"top", "-b"}},
		{name: "both", query: "argv=top&cmd=ls", wantErr: true},
		{name: "bad cols", query: "cols=0", wantErr: true},
		{name: "bad env", query: "env=NOEQUALS", wantErr: true},
		{name: "relative cwd", query: "cwd=tmp", wantErr: true},
		{name: "NUL in argv", query: "argv=a%00b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			req, err := ptyRequest(q)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ptyRequest(%s) = %+v, %v; want InvalidArgument", tt.query, req, err)
				}
				return
			}
			if err != nil || len(req.Argv) != len(tt.wantArgv) || req.Argv[0] != tt.wantArgv[0] || req.Cols != 80 || req.Rows != 24 {
				t.Errorf("ptyRequest(%s) = %+v, %v; want argv %q at 80x24", tt.query, req, err, tt.wantArgv)
			}
		})
	}
}
