package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/aetherium/aetherium/apiv1"
)

// StartProcess starts req in the background (req.Background is set) and
// returns its PID at once; read its output with ProcessOutput.
func (c *Client) StartProcess(ctx context.Context, vm string, req *apiv1.ExecRequest) (int, error) {
	r := *req
	r.Background, r.KeepRunning = true, false
	var out apiv1.ProcessStarted
	err := c.doJSON(ctx, http.MethodPost, c.prefix+"/vms/"+url.PathEscape(vm)+"/exec", &r, &out)
	return out.PID, err
}

// Processes lists the processes started in the sandbox with background or
// keep_running (at most 256; finished ones are forgotten first).
func (c *Client) Processes(ctx context.Context, vm string) ([]apiv1.Process, error) {
	var out apiv1.ProcessList
	err := c.doJSON(ctx, http.MethodGet, c.prefix+"/vms/"+url.PathEscape(vm)+"/processes", nil, &out)
	return out.Processes, err
}

// SignalProcess sends signal ("TERM", "SIGKILL", …) to the process group of
// a process started through Aetherium that still runs. An unknown PID is a
// 404 *Error, a process that has exited a 409 one.
func (c *Client) SignalProcess(ctx context.Context, vm string, pid int, signal string) error {
	return c.doJSON(ctx, http.MethodPost, c.processPath(vm, pid)+"/signal", &apiv1.SignalRequest{Signal: signal}, nil)
}

func (c *Client) processPath(vm string, pid int) string {
	return c.prefix + "/vms/" + url.PathEscape(vm) + "/processes/" + strconv.Itoa(pid)
}

// OutputStream is a background process's output being read: Copy it once,
// then Close it.
type OutputStream struct {
	// Dropped is how many bytes of output the sandbox had dropped (it keeps
	// the last 1 MiB) when the read began.
	Dropped int64
	body    io.ReadCloser
}

// ProcessOutput opens the buffered output of process pid and, with follow,
// what follows until it exits (reattaching to it). Closing the stream
// never stops the process.
func (c *Client) ProcessOutput(ctx context.Context, vm string, pid int, follow bool) (*OutputStream, error) {
	path := c.processPath(vm, pid) + "/output"
	if follow {
		path += "?follow=1"
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	dropped, _ := strconv.ParseInt(resp.Header.Get("X-Output-Dropped"), 10, 64)
	return &OutputStream{Dropped: dropped, body: resp.Body}, nil
}

// Copy copies the output to stdout and stderr (nil discards) and returns
// how the process ended, or nil when it still runs (a read that does not
// follow).
func (o *OutputStream) Copy(stdout, stderr io.Writer) (*apiv1.ExecExit, error) {
	return readExecEvents(o.body, stdout, stderr, true)
}

// Close ends the read. It is idempotent.
func (o *OutputStream) Close() error { return o.body.Close() }

// readExecEvents copies an NDJSON exec event stream to stdout and stderr
// and returns its exit event. With endOK a stream ending without one is a
// nil exit, not an error.
func readExecEvents(r io.Reader, stdout, stderr io.Writer, endOK bool) (*apiv1.ExecExit, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev apiv1.ExecEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("bad exec event: %w", err)
		}
		switch ev.Type {
		case apiv1.ExecStdout:
			write(stdout, ev.Data)
		case apiv1.ExecStderr:
			write(stderr, ev.Data)
		case apiv1.ExecEnd:
			return &ev.ExecExit, nil
		case apiv1.ExecError:
			if ev.Error == nil {
				return nil, errors.New("exec error event without an error")
			}
			return nil, &Error{Status: http.StatusOK, Code: ev.Error.Code, Message: ev.Error.Message}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("exec stream broken: %w", err)
	}
	if endOK {
		return nil, nil
	}
	return nil, errors.New("exec stream ended without an exit event")
}

// ListDir lists the directory path in the sandbox (lstat: symlinks are
// described, not followed), at most 10,000 entries sorted by name.
func (c *Client) ListDir(ctx context.Context, vm, path string) (*apiv1.DirListing, error) {
	var out apiv1.DirListing
	err := c.doJSON(ctx, http.MethodGet, c.prefix+"/vms/"+url.PathEscape(vm)+"/files/list?"+url.Values{"path": {path}}.Encode(), nil, &out)
	return &out, err
}

// WatchDir watches the directory path in the sandbox (with recursive, its
// subdirectories too; symlinks are never followed) and calls fn with each
// change until ctx ends (then it returns nil), fn returns an error, or the
// stream breaks. ready, when not nil, is called once the watch is set.
func (c *Client) WatchDir(ctx context.Context, vm, path string, recursive bool, ready func(), fn func(apiv1.FileEvent) error) error {
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", "1")
	}
	resp, err := c.do(ctx, http.MethodGet, c.prefix+"/vms/"+url.PathEscape(vm)+"/files/watch?"+q.Encode(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ready != nil {
		ready()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue // event names, comments, blank lines
		}
		var ev apiv1.FileEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("bad file event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil && !strings.Contains(err.Error(), "closed") {
		return fmt.Errorf("watch stream broken: %w", err)
	}
	return errors.New("watch stream ended")
}
