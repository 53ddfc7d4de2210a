package worker

import (
	"strings"
	"testing"
)

// TestTail guards installer output against unbounded buffering (issue 10):
// whatever the guest writes, the tail holds at most its max bytes, the last
// ones.
func TestTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"short", []string{"ab", "cd"}, "abcd"},
		{"exact", []string{"abcdefgh"}, "abcdefgh"},
		{"one big write", []string{strings.Repeat("x", 100) + "12345678"}, "12345678"},
		{"many small", []string{"abc", "def", "ghi", "jkl"}, "efghijkl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tl := newTail(8)
			for _, w := range tt.writes {
				tl.Write([]byte(w))
			}
			if got := tl.String(); got != tt.want || cap(tl.buf) > 64 {
				t.Errorf("tail of %q = %q (cap %d), want %q", tt.writes, got, cap(tl.buf), tt.want)
			}
		})
	}
}

// TestLineMatch: the installer's version line is found however the output is
// split, and a line longer than maxLine is skipped, not buffered.
func TestLineMatch(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("y", 3*maxLine)
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"plain", []string{"noise\nAETHER_INSTALLED=1.2.3\n"}, "1.2.3"},
		{"split", []string{"AETHER_INST", "ALLED=2.0", "\r\nmore\n"}, "2.0"},
		{"last wins", []string{"AETHER_INSTALLED=1\nAETHER_INSTALLED=2\n"}, "2"},
		{"no newline yet", []string{"AETHER_INSTALLED=1"}, ""},
		{"not at line start", []string{"x AETHER_INSTALLED=1\n"}, ""},
		{"with spaces", []string{"AETHER_INSTALLED=1 2\n"}, ""},
		{"long line skipped", []string{"AETHER_INSTALLED=" + long + "\n", "AETHER_INSTALLED=3\n"}, "3"},
		{"long line then match", []string{long, long, "\nAETHER_INSTALLED=4\n"}, "4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &lineMatch{prefix: installedPrefix}
			for _, w := range tt.writes {
				m.Write([]byte(w))
			}
			if m.matched != tt.want || cap(m.line) > 2*maxLine {
				t.Errorf("matched %q (line cap %d), want %q", m.matched, cap(m.line), tt.want)
			}
		})
	}
}
