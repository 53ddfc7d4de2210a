package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/aetherium/aetherium/apiv1"
)

// Sandbox is one sandbox held as a session, the way E2B's SDKs hold one:
//
//	sb, err := c.CreateSandbox(ctx, &client.CreateVMRequest{Name: "dev", Template: "node22"})
//	defer sb.Close()
//	res, err := sb.Run(ctx, "node --version")
//	err = sb.WriteFile(ctx, "/work/main.js", []byte("console.log(1)"), 0o644)
type Sandbox struct {
	c *Client
	// VM is the sandbox as it was when it became running.
	VM *apiv1.VM
}

// CreateSandbox creates a sandbox and waits until it is running (or its
// create failed: then the error carries the task's reason).
func (c *Client) CreateSandbox(ctx context.Context, req *CreateVMRequest) (*Sandbox, error) {
	acc, err := c.CreateVM(ctx, req)
	if err != nil {
		return nil, err
	}
	t, err := c.WaitTask(ctx, acc.TaskID, nil)
	if err != nil {
		return nil, err
	}
	if t.Status != "succeeded" {
		return nil, fmt.Errorf("create sandbox %s: %s: %s", req.Name, t.Status, t.Error)
	}
	vm, err := c.GetVM(ctx, acc.VMID)
	if err != nil {
		return nil, err
	}
	return &Sandbox{c: c, VM: vm}, nil
}

// Sandbox returns the session of an existing sandbox (ID or name).
func (c *Client) Sandbox(ctx context.Context, idOrName string) (*Sandbox, error) {
	vm, err := c.GetVM(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	return &Sandbox{c: c, VM: vm}, nil
}

// RunResult is a finished command with its output.
type RunResult struct {
	apiv1.ExecExit
	Stdout, Stderr []byte
}

// Code is the command's exit code, or -1 when a signal ended it (Signal,
// TimedOut say why).
func (r *RunResult) Code() int {
	if r.ExitCode == nil {
		return -1
	}
	return *r.ExitCode
}

// maxRunOutput caps what Run keeps of each stream; Exec streams without a cap.
const maxRunOutput = 16 << 20

// Run runs command through /bin/sh -c and returns its exit and output (each
// stream's first 16 MiB; Exec streams all of it). A non-zero exit is a
// result, not an error.
func (s *Sandbox) Run(ctx context.Context, command string) (*RunResult, error) {
	return s.RunRequest(ctx, &apiv1.ExecRequest{Command: command}, nil)
}

// RunRequest runs req with stdin (nil: none) and returns its exit and output.
func (s *Sandbox) RunRequest(ctx context.Context, req *apiv1.ExecRequest, stdin io.Reader) (*RunResult, error) {
	var out, errOut capped
	exit, err := s.c.Exec(ctx, s.VM.ID, req, stdin, &out, &errOut)
	if err != nil {
		return nil, err
	}
	return &RunResult{ExecExit: *exit, Stdout: out.Bytes(), Stderr: errOut.Bytes()}, nil
}

// Exec streams req's output to stdout and stderr (see Client.Exec).
func (s *Sandbox) Exec(ctx context.Context, req *apiv1.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (*apiv1.ExecExit, error) {
	return s.c.Exec(ctx, s.VM.ID, req, stdin, stdout, stderr)
}

// WriteFile writes data to path in the sandbox (parents created, replaced
// atomically) with mode (0: 0644).
func (s *Sandbox) WriteFile(ctx context.Context, path string, data []byte, mode os.FileMode) error {
	_, err := s.c.PutFile(ctx, s.VM.ID, path, uint32(mode.Perm()), bytes.NewReader(data))
	return err
}

// ReadFile reads the file at path in the sandbox, refusing one larger than
// max bytes.
func (s *Sandbox) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	resp, err := s.c.OpenFile(ctx, s.VM.ID, path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err == nil && int64(len(b)) > max {
		return nil, fmt.Errorf("%s in sandbox %s is larger than %d bytes", path, s.VM.Name, max)
	}
	return b, err
}

// Close deletes the sandbox. It does not wait for the delete to finish.
func (s *Sandbox) Close() error {
	_, err := s.c.DeleteVM(context.Background(), s.VM.ID)
	return err
}

// capped keeps the first maxRunOutput bytes written to it.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxRunOutput - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
