package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// progressDelay is how long an operation runs before its progress line
	// appears: quick ones print nothing.
	progressDelay = time.Second
	// progressEvery bounds how often the line is redrawn.
	progressEvery = 100 * time.Millisecond
	// barWidth is the bar's width in cells.
	barWidth = 20
	// maxNote bounds the server's progress text on the line.
	maxNote = 48
)

// progress draws one self-overwriting status line on a terminal: a label,
// a bar when the total is known, counts (bytes with a rate, or steps) and
// the time so far. Its methods do nothing when w is nil (stderr is not a
// terminal), so callers need not check. Safe for concurrent use (an upload
// is read by the HTTP transport's goroutine).
type progress struct {
	w     io.Writer
	label string
	bytes bool // counts are bytes (else steps)
	now   func() time.Time

	mu          sync.Mutex
	done, total int64 // total 0: unknown
	note        string
	start       time.Time
	drawn       time.Time
	shown       bool
}

// newProgress returns a progress line on stderr when it is a terminal (and
// one that draws nothing otherwise).
func newProgress(label string, bytes bool) *progress {
	var w io.Writer
	if isTerminal(os.Stderr) {
		w = os.Stderr
	}
	return newProgressTo(w, label, bytes, time.Now)
}

func newProgressTo(w io.Writer, label string, bytes bool, now func() time.Time) *progress {
	return &progress{w: w, label: label, bytes: bytes, now: now, start: now()}
}

// set records how far the operation is and redraws the line when it is
// due; a negative total keeps the one known.
func (p *progress) set(done, total int64, note string) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.note = done, note
	if total >= 0 {
		p.total = total
	}
	now := p.now()
	if now.Sub(p.start) < progressDelay || now.Sub(p.drawn) < progressEvery {
		return
	}
	p.drawn, p.shown = now, true
	fmt.Fprint(p.w, "\r\033[K"+p.line(now))
}

// add counts n more bytes or steps.
func (p *progress) add(n int64) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	done, note := p.done+n, p.note
	p.mu.Unlock()
	p.set(done, -1, note)
}

// finish clears the line, if one was drawn.
func (p *progress) finish() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// line renders the status line at now.
func (p *progress) line(now time.Time) string {
	elapsed := now.Sub(p.start)
	parts := []string{p.label}
	if p.note != "" {
		parts[0] += ": " + trunc(printable(p.note), maxNote)
	}
	if p.total > 0 {
		frac := min(float64(p.done)/float64(p.total), 1)
		filled := int(frac * barWidth)
		parts = append(parts, "["+strings.Repeat("#", filled)+strings.Repeat(".", barWidth-filled)+"]",
			fmt.Sprintf("%3.0f%%", frac*100))
	}
	switch {
	case p.bytes && p.total > 0:
		parts = append(parts, humanBytes(p.done)+"/"+humanBytes(p.total))
	case p.bytes:
		parts = append(parts, humanBytes(p.done))
	case p.total > 0:
		parts = append(parts, fmt.Sprintf("%d/%d", p.done, p.total))
	}
	if p.bytes && elapsed >= time.Second {
		parts = append(parts, humanBytes(int64(float64(p.done)/elapsed.Seconds()))+"/s")
	}
	return strings.Join(append(parts, fmt.Sprintf("(%ds)", int(elapsed/time.Second))), "  ")
}

// reader counts what r yields into p.
func (p *progress) reader(r io.Reader) io.Reader { return progressReader{r, p} }

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(int64(n))
	return n, err
}

// stepRe finds "i/n" in a task's progress text ("installing go (2/3)",
// "command 1/4").
var stepRe = regexp.MustCompile(`\b(\d+)/(\d+)\b`)

// taskSteps reads the step counts of a task's progress text; ok is false
// when it has none.
func taskSteps(text string) (done, total int64, ok bool) {
	m := stepRe.FindStringSubmatch(text)
	if m == nil {
		return 0, 0, false
	}
	i, _ := strconv.ParseInt(m[1], 10, 64)
	n, _ := strconv.ParseInt(m[2], 10, 64)
	if n <= 0 || i > n {
		return 0, 0, false
	}
	return i - 1, n, true // "installing x (2/3)" is under way: the steps before it are done
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
