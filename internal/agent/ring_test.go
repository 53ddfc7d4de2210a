package agent

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/agentproto"
)

// TestOutputRing: the ring never holds more than its bound (chunk overhead
// included), drops the oldest output first and counts it, and a reader
// resumes at its offset.
func TestOutputRing(t *testing.T) {
	t.Parallel()
	r := newOutputRing(4096)
	var all []byte
	for i := range 1000 { // interleaved tiny writes: the worst case for chunk count
		typ := agentproto.TypeStdout
		if i%2 == 1 {
			typ = agentproto.TypeStderr
		}
		b := []byte{byte('a' + i%26)}
		r.write(typ, b)
		all = append(all, b...)
	}
	if r.held > r.max {
		t.Errorf("ring holds %d bytes, bound %d", r.held, r.max)
	}
	chunks, next, exit, _ := r.since(0)
	var got []byte
	for _, c := range chunks {
		got = append(got, c.data...)
	}
	total, dropped := r.stats()
	if total != 1000 || next != 1000 || exit != nil {
		t.Errorf("total %d next %d exit %v, want 1000 1000 nil", total, next, exit)
	}
	if int64(len(got))+dropped != total || !bytes.Equal(got, all[dropped:]) {
		t.Errorf("held %d bytes + dropped %d != %d, or held bytes are not the newest", len(got), dropped, total)
	}
	r.write(agentproto.TypeStdout, []byte("xyz"))
	chunks, _, _, _ = r.since(next)
	if len(chunks) != 1 || string(chunks[0].data) != "xyz" {
		t.Errorf("since(%d) = %+v, want just xyz", next, chunks)
	}
}

// TestProcTableEvictsFinishedFirst: a full table forgets the process that
// ended first, and refuses a start when every process still runs.
func TestProcTableEvictsFinishedFirst(t *testing.T) {
	t.Parallel()
	pt := newProcTable(2)
	add := func(pid int, running bool, ended time.Time) error {
		_, err := pt.start(func() (*tracked, error) {
			return &tracked{p: &process{pid: pid}, out: newOutputRing(64), running: running, ended: ended}, nil
		})
		return err
	}
	now := time.Now()
	if err := add(1, false, now); err != nil {
		t.Fatal(err)
	}
	if err := add(2, false, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := add(3, true, time.Time{}); err != nil {
		t.Fatalf("start into a table with finished processes: %v", err)
	}
	if _, err := pt.get(2); err == nil {
		t.Errorf("pid 2 (ended first) is still tracked")
	}
	if _, err := pt.get(1); err != nil {
		t.Errorf("pid 1 was evicted instead of pid 2: %v", err)
	}
	if err := add(4, true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := add(5, true, time.Time{}); err == nil {
		t.Errorf("start into a table of running processes succeeded")
	}
}

// TestFitListing: the largest process table a client can make (256
// processes, 32 arguments of 256 control bytes each, which JSON escapes
// six-fold) still fits one frame, its first entries whole.
func TestFitListing(t *testing.T) {
	arg := strings.Repeat("\x01", 256)
	ps := make([]agentproto.Process, 256)
	for i := range ps {
		ps[i] = agentproto.Process{PID: i + 2, Argv: slices.Repeat([]string{arg}, 32), StartedAt: time.Now()}
	}
	fitListing(ps)
	b, _ := json.Marshal(agentproto.Response{Processes: ps})
	if len(b) > agentproto.MaxPayload {
		t.Errorf("listing of %d bytes does not fit a frame (%d)", len(b), agentproto.MaxPayload)
	}
	if len(ps[0].Argv) != 32 || len(ps[255].Argv) != 2 {
		t.Errorf("first entry has %d arguments (want all 32), last %d (want its program and …)", len(ps[0].Argv), len(ps[255].Argv))
	}
}
