package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestProgressLine draws into a fake terminal (a buffer) on a fake clock:
// nothing for the first second, then one overwritten line per redraw (at
// most every 100 ms) with bar, percentage, counts and rate, and a clear at
// the end.
func TestProgressLine(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	tests := []struct {
		name  string
		label string
		bytes bool
		steps func(p *progress, c *fakeClock) // moves the clock and reports
		want  string                          // everything written
	}{
		{"quick upload prints nothing", "uploading f", true, func(p *progress, c *fakeClock) {
			p.set(0, 10*mib, "")
			c.advance(900 * time.Millisecond)
			p.add(10 * mib)
		}, ""},
		{"upload with a known size", "uploading f", true, func(p *progress, c *fakeClock) {
			p.set(0, 10*mib, "")
			c.advance(1500 * time.Millisecond)
			p.add(5 * mib)
			c.advance(50 * time.Millisecond)
			p.add(mib) // within 100 ms of the last draw: not drawn
			c.advance(500 * time.Millisecond)
			p.add(4 * mib)
		}, "\r\033[Kuploading f  [##########..........]   50%  5.0 MiB/10.0 MiB  3.3 MiB/s  (1s)" +
			"\r\033[Kuploading f  [####################]  100%  10.0 MiB/10.0 MiB  4.9 MiB/s  (2s)" + "\r\033[K"},
		{"download of unknown size", "downloading f", true, func(p *progress, c *fakeClock) {
			c.advance(2 * time.Second)
			p.add(512)
		}, "\r\033[Kdownloading f  512 B  256 B/s  (2s)" + "\r\033[K"},
		{"task with steps", "creating sandbox", false, func(p *progress, c *fakeClock) {
			c.advance(4 * time.Second)
			d, n, _ := taskSteps("installing go (2/3)")
			p.set(d, n, "running — installing go (2/3)")
		}, "\r\033[Kcreating sandbox: running — installing go (2/3)  [######..............]   33%  1/3  (4s)" + "\r\033[K"},
		{"task without steps, long note", "building image", false, func(p *progress, c *fakeClock) {
			c.advance(3 * time.Second)
			p.set(0, 0, "running — "+strings.Repeat("x", 60))
		}, "\r\033[Kbuilding image: running — " + strings.Repeat("x", 37) + "…  (3s)" + "\r\033[K"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var term bytes.Buffer
			c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			p := newProgressTo(&term, tt.label, tt.bytes, c.now)
			tt.steps(p, c)
			p.finish()
			if got := term.String(); got != tt.want {
				t.Errorf("terminal got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestProgressNotATerminal: without a terminal nothing is drawn, and the
// counting reader still passes every byte.
func TestProgressNotATerminal(t *testing.T) {
	t.Parallel()
	c := &fakeClock{t: time.Now()}
	p := newProgressTo(nil, "uploading", true, c.now)
	c.advance(time.Hour)
	b, err := io.ReadAll(p.reader(strings.NewReader("hello")))
	p.finish()
	if string(b) != "hello" || err != nil {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestTaskSteps(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		text        string
		done, total int64
		ok          bool
	}{
		{"installing go@1.23 (1/3)", 0, 3, true},
		{"installed 3 tools", 0, 0, false},
		{"command 4/4", 3, 4, true},
		{"setup command 2/5", 1, 5, true},
		{"saving the template image", 0, 0, false},
		{"I: retrieving libc6 2.36", 0, 0, false},
		{"5/0", 0, 0, false},
	} {
		done, total, ok := taskSteps(tt.text)
		if done != tt.done || total != tt.total || ok != tt.ok {
			t.Errorf("taskSteps(%q) = %d, %d, %v; want %d, %d, %v", tt.text, done, total, ok, tt.done, tt.total, tt.ok)
		}
	}
}
