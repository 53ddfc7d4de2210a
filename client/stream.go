package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/aetherium/aetherium/apiv1"
)

// Exec runs a command directly in the sandbox and copies its output to
// stdout and stderr as it is produced. A non-nil stdin is streamed to the
// command (full duplex) until it ends. The result carries the exit code, or
// the signal, or TimedOut.
func (c *Client) Exec(ctx context.Context, vm string, req *apiv1.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (*apiv1.ExecExit, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	path := c.prefix + "/vms/" + url.PathEscape(vm) + "/exec"
	var body io.Reader = bytes.NewReader(b)
	if stdin != nil {
		path += "?stdin=true"
		body = io.MultiReader(bytes.NewReader(append(b, '\n')), stdin)
	}
	resp, err := c.do(ctx, http.MethodPost, path, body, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	exit, err := readExecEvents(resp.Body, stdout, stderr, false)
	var apiErr *Error
	if err == nil || errors.As(err, &apiErr) {
		// Read the response's end, which follows the last event, so the
		// connection is kept for the next call instead of closed.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	}
	return exit, err
}

func write(w io.Writer, p []byte) {
	if w != nil {
		w.Write(p)
	}
}

// PutFile uploads r to path inside the sandbox; mode 0 means 0644.
func (c *Client) PutFile(ctx context.Context, vm, path string, mode uint32, r io.Reader) (int64, error) {
	q := url.Values{"path": {path}}
	if mode != 0 {
		q.Set("mode", strconv.FormatUint(uint64(mode), 8))
	}
	resp, err := c.do(ctx, http.MethodPut, c.prefix+"/vms/"+url.PathEscape(vm)+"/files?"+q.Encode(), r, "application/octet-stream")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out apiv1.FileWritten
	return out.Size, json.NewDecoder(resp.Body).Decode(&out)
}

// GetFile downloads path from the sandbox into w and returns its size. A
// transfer cut short is an error, never a short file reported as whole.
func (c *Client) GetFile(ctx context.Context, vm, path string, w io.Writer) (int64, error) {
	resp, err := c.OpenFile(ctx, vm, path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("download of %s ended after %d of %d bytes", path, n, resp.ContentLength)
	}
	return n, err
}

// OpenFile starts downloading path and returns the response; the caller
// reads and closes its Body (Content-Length and X-File-Mode describe it).
func (c *Client) OpenFile(ctx context.Context, vm, path string) (*http.Response, error) {
	return c.do(ctx, http.MethodGet, c.prefix+"/vms/"+url.PathEscape(vm)+"/files?"+url.Values{"path": {path}}.Encode(), nil, "")
}

// Console returns the end (at most maxBytes) of a sandbox's console log.
func (c *Client) Console(ctx context.Context, vm string, maxBytes int) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, c.prefix+"/vms/"+url.PathEscape(vm)+"/console?max_bytes="+strconv.Itoa(maxBytes), nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
