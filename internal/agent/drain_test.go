package agent

import (
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

// TestDrainKeepsUnreadOutput: the process has exited and its output sits in
// the pipe, but the pump reading it gets no core for longer than
// pipeDrainGrace (as in a loaded TCG guest: the QEMU conformance suite once
// lost 16 KiB of a 1 MiB exec this way). drain must not close the pipe on
// it.
func TestDrainKeepsUnreadOutput(t *testing.T) {
	p := &process{}
	var wOut, wErr *os.File
	var err error
	if p.stdout, wOut, err = os.Pipe(); err != nil {
		t.Fatal(err)
	}
	if p.stderr, wErr, err = os.Pipe(); err != nil {
		t.Fatal(err)
	}
	defer p.closeAll()
	want := make([]byte, 16<<10)
	wOut.Write(want)
	wOut.Close()
	wErr.Close()
	var pumps sync.WaitGroup
	pumps.Add(2)
	got := make(chan int, 1)
	go func() { // a pump that gets a core only after three graces
		defer pumps.Done()
		time.Sleep(3 * pipeDrainGrace)
		b, _ := io.ReadAll(p.stdout)
		got <- len(b)
	}()
	go func() { defer pumps.Done(); io.Copy(io.Discard, p.stderr) }()
	p.drain(&pumps)
	if n := <-got; n != len(want) {
		t.Errorf("the pump read %d bytes of %d: drain closed the pipe on unread output", n, len(want))
	}
}
