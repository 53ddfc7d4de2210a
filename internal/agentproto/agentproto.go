// Package agentproto is the wire protocol between the host (aetherd) and the
// guest agent (aether-agent). Both sides import it; it is the protocol's spec.
//
// # Connection
//
// The host obtains one byte stream per sandbox from its runtime (a unix socket
// for Docker, vsock or virtio-serial for microVMs). On it:
//
//  1. The host writes a Hello frame; the agent answers with a Hello frame that
//     carries the protocol version both will speak (the lower of the two
//     maxima). A successful handshake is the sandbox's readiness signal.
//  2. Both sides then run a yamux session over the stream (host = client).
//     Every operation is one yamux stream, so any number run concurrently.
//
// # Operation streams
//
// The host opens a stream and writes a Request frame naming the operation.
//   - exec: host → Stdin*, StdinClose, Signal*; agent → Stdout*, Stderr*, then
//     exactly one Exit frame, after which the agent closes the stream.
//   - file_put: host → Data*, DataEnd; agent → Response (or Error).
//   - file_get: agent → Response (size, mode) or Error, then Data*, DataEnd.
//   - health: agent → Response.
//   - pty (version 2): agent → Response once the process runs on a new
//     pseudo-terminal (or Error); host → Stdin*, Resize*, Signal*; agent →
//     Stdout* (the terminal's output, stdout and stderr merged), then exactly
//     one Exit frame. A Signal goes to the terminal's foreground process
//     group. The stream breaking kills the process group.
//   - dial (version 2): the agent connects to 127.0.0.1:Port inside the
//     guest and answers Response (or Error); from then on the stream carries
//     the connection's raw bytes both ways, unframed. Either side closing
//     ends the connection: there is no half-close.
//   - exec with Background (version 3): the agent starts the process, keeps
//     it in its process table and answers one Response carrying its PID. Its
//     output goes to a ring buffer (MaxProcessOutput bytes, stdout and stderr
//     together, oldest dropped first and counted); the table holds at most
//     MaxProcesses, finished ones evicted first.
//   - exec with KeepRunning (version 3): like a Background start, then the
//     stream is an output stream with Follow (below), preceded by Stdin* and
//     Signal* frames from the host as for exec. The stream breaking closes
//     stdin and leaves the process running.
//   - processes (version 3): agent → Response with Processes.
//   - signal (version 3): agent → Response, or Error when the PID is not a
//     process the agent started and still runs (not_found, conflict) or the
//     signal is not one a client may send.
//   - output (version 3): agent → Response (PID, Dropped), the buffered
//     Stdout*/Stderr*, then with Follow what follows; then Exit once the
//     process has ended, or DataEnd when it still runs and Follow is unset.
//   - list (version 3): agent → Data* (each a JSON array of DirEntry, from
//     lstat: symlinks are never followed), then a Response with Truncated
//     (at most MaxListEntries entries), or an Error.
//   - watch (version 3): agent → Response once the inotify watches are set
//     (or Error), then Event* frames (JSON FileEvent) until the host closes
//     the stream. Symlinks are never followed out of the watched tree.
//
// An agent that speaks a lower version answers newer ops with an Error; the
// host checks the negotiated version first and refuses them itself.
//
// A failed request is answered with one Error frame instead.
//
// # Frames
//
// A frame is a 1-byte type, a 4-byte big-endian payload length and the payload.
// Control frames (Hello, Request, Response, Exit, Error, Signal, Resize, Event) carry JSON;
// Stdin, Stdout, Stderr and Data carry raw bytes. Payloads are at most
// MaxPayload bytes; a longer length is a protocol error, not an allocation.
package agentproto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the highest protocol version this build speaks. A peer that
// speaks a lower version is served at that version (see Negotiate).
const Version = 3

// VersionPty is the first version with the pty and dial operations.
const VersionPty = 2

// VersionProcs is the first version with background processes (Background,
// KeepRunning, processes, signal, output) and the list and watch operations.
const VersionProcs = 3

// MinVersion is the lowest protocol version this build still speaks.
const MinVersion = 1

// MaxPayload bounds a frame's payload, so a corrupt length cannot make the
// reader allocate without bound.
const MaxPayload = 1 << 20

// HeaderSize is the size in bytes of a frame header.
const HeaderSize = 5

// FrameType says what a frame's payload is.
type FrameType uint8

// Frame types. Values are part of the wire format: never renumber.
const (
	TypeHello      FrameType = 1
	TypeRequest    FrameType = 2
	TypeResponse   FrameType = 3
	TypeError      FrameType = 4
	TypeStdin      FrameType = 5
	TypeStdinClose FrameType = 6
	TypeSignal     FrameType = 7
	TypeStdout     FrameType = 8
	TypeStderr     FrameType = 9
	TypeExit       FrameType = 10
	TypeData       FrameType = 11
	TypeDataEnd    FrameType = 12
	TypeResize     FrameType = 13
	TypeEvent      FrameType = 14
)

func (t FrameType) String() string {
	names := map[FrameType]string{
		TypeHello: "hello", TypeRequest: "request", TypeResponse: "response", TypeError: "error",
		TypeStdin: "stdin", TypeStdinClose: "stdin_close", TypeSignal: "signal", TypeStdout: "stdout",
		TypeStderr: "stderr", TypeExit: "exit", TypeData: "data", TypeDataEnd: "data_end",
		TypeResize: "resize", TypeEvent: "event",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("frame(%d)", uint8(t))
}

// ErrFrameTooLarge is returned by ReadFrame for a length above the limit.
var ErrFrameTooLarge = errors.New("agentproto: frame payload too large")

// Frame is one decoded frame.
type Frame struct {
	Type    FrameType
	Payload []byte
}

// WriteFrame writes one frame. It is not safe for concurrent use on one
// writer; callers serialize writes.
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	if len(payload) > MaxPayload {
		return ErrFrameTooLarge
	}
	buf := make([]byte, HeaderSize+len(payload))
	buf[0] = byte(t)
	binary.BigEndian.PutUint32(buf[1:HeaderSize], uint32(len(payload)))
	copy(buf[HeaderSize:], payload)
	_, err := w.Write(buf)
	return err
}

// WriteJSON writes a control frame whose payload is v encoded as JSON.
func WriteJSON(w io.Writer, t FrameType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("agentproto: encode %s: %w", t, err)
	}
	return WriteFrame(w, t, b)
}

// ReadFrame reads one frame. It returns io.EOF only when the stream ends
// cleanly between frames, io.ErrUnexpectedEOF inside one, and
// ErrFrameTooLarge for a payload above max (MaxPayload when max <= 0).
func ReadFrame(r io.Reader, max int) (Frame, error) {
	if max <= 0 || max > MaxPayload {
		max = MaxPayload
	}
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(max) {
		return Frame{}, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	f := Frame{Type: FrameType(hdr[0]), Payload: make([]byte, n)}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return f, nil
}

// Decode unmarshals a control frame's JSON payload into v after checking the
// frame's type. An Error frame decodes into a *RemoteError that is returned.
func (f Frame) Decode(want FrameType, v any) error {
	if f.Type == TypeError && want != TypeError {
		var re RemoteError
		if err := json.Unmarshal(f.Payload, &re); err != nil {
			return fmt.Errorf("agentproto: bad error frame: %w", err)
		}
		return &re
	}
	if f.Type != want {
		return fmt.Errorf("agentproto: got %s frame, want %s", f.Type, want)
	}
	if err := json.Unmarshal(f.Payload, v); err != nil {
		return fmt.Errorf("agentproto: bad %s frame: %w", f.Type, err)
	}
	return nil
}

// Negotiate picks the version two peers speak: the lower of the two maxima, or
// an error if that is below either side's minimum.
func Negotiate(peerMax, peerMin int) (int, error) {
	v := min(peerMax, Version)
	if v < MinVersion || v < peerMin {
		return 0, fmt.Errorf("agentproto: no common version (peer %d..%d, local %d..%d)",
			peerMin, peerMax, MinVersion, Version)
	}
	return v, nil
}
