package worker

import (
	"bytes"
	"context"
	"testing"
)

// TestCappedWriterStopsAtMax: the bundle read from a sandbox is hostile; the
// write that would pass the cap fails, is not written, and ends the command.
func TestCappedWriterStopsAtMax(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	c := &cappedWriter{w: &buf, max: 10, cancel: cancel}
	if n, err := c.Write([]byte("0123456789")); n != 10 || err != nil {
		t.Fatalf("write up to the cap = %d, %v; want 10, nil", n, err)
	}
	if n, err := c.Write([]byte("x")); n != 0 || err == nil || !c.over || ctx.Err() == nil {
		t.Fatalf("write past the cap = %d, %v (over %v, ctx %v); want refused, over, cancelled", n, err, c.over, ctx.Err())
	}
	if buf.String() != "0123456789" {
		t.Errorf("written %q; want only the bytes under the cap", buf.String())
	}
}
