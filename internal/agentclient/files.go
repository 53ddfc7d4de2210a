package agentclient

import (
	"context"
	"fmt"
	"io"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// PutFile streams r into the file req.Path inside the sandbox. The agent
// writes a temporary file and renames it into place only after the whole
// stream arrived, so a failed transfer leaves the old file (or none). It
// returns the number of bytes written.
func (c *Client) PutFile(ctx context.Context, req *agentproto.FilePutRequest, r io.Reader) (int64, error) {
	st, done, err := c.open(ctx, agentproto.Request{Op: agentproto.OpFilePut, FilePut: req})
	if err != nil {
		return 0, err
	}
	defer done()
	// The agent answers early with an Error frame (bad path, no permission):
	// read it concurrently so the upload stops instead of filling the window.
	answer := make(chan error, 1)
	var resp agentproto.Response
	go func() {
		f, err := agentproto.ReadFrame(st, 0)
		if err != nil {
			answer <- streamErr(ctx, err)
			return
		}
		answer <- mapRemote(f.Decode(agentproto.TypeResponse, &resp))
	}()
	if err := sendData(st, r); err != nil {
		st.Close() // no DataEnd: the agent discards the temporary file
		select {
		case aerr := <-answer:
			if aerr != nil {
				return 0, aerr
			}
		default:
		}
		return 0, err
	}
	if err := <-answer; err != nil {
		return 0, err
	}
	return resp.Size, nil
}

func sendData(st io.Writer, r io.Reader) error {
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := agentproto.WriteFrame(st, agentproto.TypeData, buf[:n]); werr != nil {
				return errdefs.Unavailable("upload interrupted: %v", werr)
			}
		}
		if err == io.EOF {
			if werr := agentproto.WriteFrame(st, agentproto.TypeDataEnd, nil); werr != nil {
				return errdefs.Unavailable("upload interrupted: %v", werr)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read upload: %w", err)
		}
	}
}

// FileReader streams a file out of the sandbox. Read it to io.EOF; a transfer
// that breaks before the end returns an error rather than a short EOF.
type FileReader struct {
	// Size and Mode describe the file as the agent opened it.
	Size int64
	Mode uint32

	st   io.Reader
	done func()
	buf  []byte
	eof  bool
}

// openAnswered opens an operation whose agent answers Response before any
// data and returns that answer; ctx bounds the whole operation, whose end
// the caller reports with done.
func (c *Client) openAnswered(ctx context.Context, req agentproto.Request) (*yamux.Stream, *agentproto.Response, func(), error) {
	st, done, err := c.open(ctx, req)
	if err != nil {
		return nil, nil, nil, err
	}
	f, err := agentproto.ReadFrame(st, 0)
	if err != nil {
		done()
		return nil, nil, nil, streamErr(ctx, err)
	}
	var resp agentproto.Response
	if err := mapRemote(f.Decode(agentproto.TypeResponse, &resp)); err != nil {
		done()
		return nil, nil, nil, err
	}
	return st, &resp, done, nil
}

// GetFile opens path inside the sandbox. A missing file returns ErrNotFound
// before any data. Close the reader when done.
func (c *Client) GetFile(ctx context.Context, path string) (*FileReader, error) {
	st, resp, done, err := c.openAnswered(ctx, agentproto.Request{Op: agentproto.OpFileGet, FileGet: &agentproto.FileGetRequest{Path: path}})
	if err != nil {
		return nil, err
	}
	return &FileReader{Size: resp.Size, Mode: resp.Mode, st: st, done: done}, nil
}

func (fr *FileReader) Read(p []byte) (int, error) {
	for len(fr.buf) == 0 {
		if fr.eof {
			return 0, io.EOF
		}
		f, err := agentproto.ReadFrame(fr.st, 0)
		if err != nil {
			return 0, errdefs.Unavailable("download interrupted: %v", err)
		}
		switch f.Type {
		case agentproto.TypeData:
			fr.buf = f.Payload
		case agentproto.TypeDataEnd:
			fr.eof = true
		default:
			return 0, fmt.Errorf("download: unexpected %s frame", f.Type)
		}
	}
	n := copy(p, fr.buf)
	fr.buf = fr.buf[n:]
	return n, nil
}

// Close ends the transfer. It is idempotent.
func (fr *FileReader) Close() error {
	fr.done()
	return nil
}
