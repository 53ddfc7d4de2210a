package agentclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// needProcs refuses a version 3 operation on an older agent, as a
// precondition the caller can fix by recreating the sandbox.
func (c *Client) needProcs(op string) error {
	if c.hello.Version < agentproto.VersionProcs {
		return errdefs.FailedPrecondition("the sandbox's agent speaks protocol version %d; %s needs %d (recreate the sandbox with a current agent)",
			c.hello.Version, op, agentproto.VersionProcs)
	}
	return nil
}

// StartBackground starts req as a background process the agent tracks and
// returns its PID. Its output goes to the agent's ring buffer (see Output).
// A program that is not there is ErrNotFound, a full process table
// ErrConflict, an agent older than protocol version 3 ErrFailedPrecondition.
func (c *Client) StartBackground(ctx context.Context, req *agentproto.ExecRequest) (int, error) {
	if err := c.needProcs("background exec"); err != nil {
		return 0, err
	}
	req.Background, req.KeepRunning, req.Stdin = true, false, false
	resp, err := c.call(ctx, agentproto.Request{Op: agentproto.OpExec, Exec: req})
	if err != nil {
		return 0, err
	}
	return resp.PID, nil
}

// Processes returns the agent's table of tracked processes.
func (c *Client) Processes(ctx context.Context) ([]agentproto.Process, error) {
	if err := c.needProcs(agentproto.OpProcesses); err != nil {
		return nil, err
	}
	resp, err := c.call(ctx, agentproto.Request{Op: agentproto.OpProcesses})
	if err != nil {
		return nil, err
	}
	return resp.Processes, nil
}

// SignalProcess sends sig to the process group of the tracked process pid.
// A pid the agent did not start is ErrNotFound, one that has exited
// ErrConflict, a signal outside the allowlist ErrInvalidArgument.
func (c *Client) SignalProcess(ctx context.Context, pid, sig int) error {
	if err := c.needProcs(agentproto.OpSignal); err != nil {
		return err
	}
	_, err := c.call(ctx, agentproto.Request{Op: agentproto.OpSignal, Signal: &agentproto.ProcessSignal{PID: pid, Signal: sig}})
	return err
}

// call runs an operation answered by one Response frame.
func (c *Client) call(ctx context.Context, req agentproto.Request) (*agentproto.Response, error) {
	st, done, err := c.open(ctx, req)
	if err != nil {
		return nil, err
	}
	defer done()
	f, err := agentproto.ReadFrame(st, 0)
	if err != nil {
		return nil, streamErr(ctx, err)
	}
	var resp agentproto.Response
	if err := mapRemote(f.Decode(agentproto.TypeResponse, &resp)); err != nil {
		return nil, err
	}
	return &resp, nil
}

// OutputStream is a tracked process's output being read. Copy it once;
// Close it when done.
type OutputStream struct {
	// Dropped is how many bytes of output the agent's ring buffer had
	// dropped when the stream began.
	Dropped int64

	st   *yamux.Stream
	done func()
}

// Output opens the output of the tracked process pid: what the agent holds
// and, with follow, what follows until the process exits. An unknown pid is
// ErrNotFound. Cancelling ctx ends the stream, never the process.
func (c *Client) Output(ctx context.Context, pid int, follow bool) (*OutputStream, error) {
	if err := c.needProcs(agentproto.OpOutput); err != nil {
		return nil, err
	}
	st, resp, done, err := c.openAnswered(ctx, agentproto.Request{Op: agentproto.OpOutput, Output: &agentproto.OutputRequest{PID: pid, Follow: follow}})
	if err != nil {
		return nil, err
	}
	return &OutputStream{Dropped: resp.Dropped, st: st, done: done}, nil
}

// Copy copies the output to eio's writers and returns the process's exit,
// or nil when it still runs (the stream was not following).
func (o *OutputStream) Copy(eio ExecIO) (*agentproto.Exit, error) {
	for {
		f, err := agentproto.ReadFrame(o.st, 0)
		if err != nil {
			return nil, errdefs.Unavailable("agent stream broken: %v", err)
		}
		switch f.Type {
		case agentproto.TypeStdout:
			writeOut(eio.Stdout, f.Payload)
		case agentproto.TypeStderr:
			writeOut(eio.Stderr, f.Payload)
		case agentproto.TypeDataEnd:
			return nil, nil
		default:
			var exit agentproto.Exit
			if err := mapRemote(f.Decode(agentproto.TypeExit, &exit)); err != nil {
				return nil, err
			}
			return &exit, nil
		}
	}
}

// Close ends the stream. It is idempotent.
func (o *OutputStream) Close() error {
	o.done()
	return nil
}

// DirListing is a directory's entries.
type DirListing struct {
	Entries []agentproto.DirEntry
	// Truncated says there were more than agentproto.MaxListEntries.
	Truncated bool
}

// What List holds of a guest's answer: Linux's longest file name
// (NAME_MAX) and symlink target (PATH_MAX), and 16 MiB of listing in all
// (10,000 entries of 255-byte names take under 4 MiB), so a hostile agent
// cannot make the host hold gigabytes with 10,000 huge entries.
const (
	maxNameBytes   = 255
	maxTargetBytes = 4096
	maxListBytes   = 16 << 20
)

// List lists the directory path (absolute) with lstat: symlinks are
// described, not followed. A missing path is ErrNotFound, one that is not a
// directory ErrInvalidArgument. At most agentproto.MaxListEntries entries
// are returned, whatever the agent sends.
func (c *Client) List(ctx context.Context, path string) (*DirListing, error) {
	if err := c.needProcs(agentproto.OpList); err != nil {
		return nil, err
	}
	st, done, err := c.open(ctx, agentproto.Request{Op: agentproto.OpList, List: &agentproto.ListRequest{Path: path}})
	if err != nil {
		return nil, err
	}
	defer done()
	var l DirListing
	for read := 0; ; {
		if read >= maxListBytes || len(l.Entries) >= agentproto.MaxListEntries {
			l.Truncated = true // the agent may have more: it is not ours to hold
			return &l, nil
		}
		f, err := agentproto.ReadFrame(st, 0)
		if err != nil {
			return nil, streamErr(ctx, err)
		}
		if f.Type != agentproto.TypeData {
			var resp agentproto.Response
			if err := mapRemote(f.Decode(agentproto.TypeResponse, &resp)); err != nil {
				return nil, err
			}
			l.Truncated = l.Truncated || resp.Truncated
			return &l, nil
		}
		read += len(f.Payload)
		var batch []agentproto.DirEntry
		if err := json.Unmarshal(f.Payload, &batch); err != nil {
			return nil, fmt.Errorf("agent sent a bad listing: %w", err)
		}
		for _, e := range batch {
			if len(e.Name) > maxNameBytes || len(e.Target) > maxTargetBytes {
				return nil, fmt.Errorf("agent sent a bad listing: an entry's name or target is longer than Linux allows")
			}
		}
		room := agentproto.MaxListEntries - len(l.Entries)
		if len(batch) > room {
			batch, l.Truncated = batch[:room], true
		}
		l.Entries = append(l.Entries, batch...)
	}
}

// Watch watches the directory path (absolute; with recursive, its
// subdirectories too) and calls fn with each change until ctx ends, fn
// returns an error, or the stream breaks; it returns nil when ctx ended.
// ready, when not nil, is called once the watches are set. A missing path is
// ErrNotFound, one that is not a directory ErrInvalidArgument.
func (c *Client) Watch(ctx context.Context, path string, recursive bool, ready func(), fn func(agentproto.FileEvent) error) error {
	if err := c.needProcs(agentproto.OpWatch); err != nil {
		return err
	}
	st, err := c.openResponse(ctx, agentproto.Request{Op: agentproto.OpWatch, Watch: &agentproto.WatchRequest{Path: path, Recursive: recursive}})
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	defer st.Close()
	if ready != nil {
		ready()
	}
	for {
		f, err := agentproto.ReadFrame(st, 0)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return errdefs.Unavailable("agent stream broken: %v", err)
		}
		var ev agentproto.FileEvent
		if err := f.Decode(agentproto.TypeEvent, &ev); err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

var _ io.Closer = (*OutputStream)(nil)
