package agent

import (
	"sync"

	"github.com/aetherium/aetherium/internal/agentproto"
)

// chunkOverhead is what one chunk is charged against the ring's bound on
// top of its bytes, so output in tiny interleaved writes cannot grow the
// chunk list past the bound either.
const chunkOverhead = 64

// maxChunk is the size up to which consecutive writes of one stream are
// merged into one chunk.
const maxChunk = 32 << 10

// chunk is a run of one stream's output starting at offset off.
type chunk struct {
	typ  agentproto.FrameType // TypeStdout or TypeStderr
	off  int64
	data []byte
}

// outputRing keeps the newest output of a tracked process, at most max
// bytes (chunkOverhead per chunk included), and its exit once it ended.
// Offsets count every byte ever written, so a follower reads on from where
// it was. It is safe for concurrent use.
type outputRing struct {
	mu      sync.Mutex
	max     int
	chunks  []chunk // oldest first
	held    int     // bytes charged for chunks
	total   int64   // offset of the next byte written
	dropped int64
	exit    *agentproto.Exit
	changed chan struct{} // closed and replaced on every write and at exit
}

func newOutputRing(max int) *outputRing {
	return &outputRing{max: max, changed: make(chan struct{})}
}

// write appends p (copied) as output of stream typ, dropping the oldest
// chunks while the ring is over its bound.
func (r *outputRing) write(typ agentproto.FrameType, p []byte) {
	if len(p) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.chunks); n > 0 && r.chunks[n-1].typ == typ && len(r.chunks[n-1].data)+len(p) <= maxChunk {
		r.chunks[n-1].data = append(r.chunks[n-1].data, p...)
	} else {
		r.chunks = append(r.chunks, chunk{typ: typ, off: r.total, data: append([]byte(nil), p...)})
		r.held += chunkOverhead
	}
	r.held += len(p)
	r.total += int64(len(p))
	for r.held > r.max && len(r.chunks) > 0 {
		c := r.chunks[0]
		r.chunks[0] = chunk{}
		r.chunks = r.chunks[1:]
		r.held -= len(c.data) + chunkOverhead
		r.dropped += int64(len(c.data))
	}
	r.notify()
}

// finish records the exit and wakes every follower.
func (r *outputRing) finish(e agentproto.Exit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exit = &e
	r.notify()
}

func (r *outputRing) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// since returns the output held from offset off on (from the oldest held
// byte when off is older), the offset after it, the exit if the process has
// ended, and a channel closed at the next change.
func (r *outputRing) since(off int64) ([]chunk, int64, *agentproto.Exit, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []chunk
	for _, c := range r.chunks {
		end := c.off + int64(len(c.data))
		if end <= off {
			continue
		}
		skip := max(off-c.off, 0)
		out = append(out, chunk{typ: c.typ, off: c.off + skip, data: append([]byte(nil), c.data[skip:]...)})
	}
	return out, r.total, r.exit, r.changed
}

// stats returns the bytes ever written and the bytes dropped.
func (r *outputRing) stats() (total, dropped int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total, r.dropped
}
