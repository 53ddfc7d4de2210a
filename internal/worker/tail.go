package worker

import "bytes"

// tail keeps the last max bytes written to it, so guest output kept for an
// error message costs at most max bytes of host memory however much the
// guest writes. It is not safe for concurrent use.
type tail struct {
	buf []byte
	max int
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tail) String() string { return string(t.buf) }

// maxLine bounds the line lineMatch holds; longer lines are skipped.
const maxLine = 4096

// lineMatch remembers the value of the last complete line of the form
// prefix+value, holding at most maxLine bytes of a line in progress. It is
// not safe for concurrent use.
type lineMatch struct {
	prefix  string
	line    []byte
	skip    bool // the line in progress passed maxLine
	matched string
}

func (m *lineMatch) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !m.skip {
			if len(m.line)+len(chunk) > maxLine {
				m.skip, m.line = true, m.line[:0]
			} else {
				m.line = append(m.line, chunk...)
			}
		}
		if i < 0 {
			break
		}
		if v, ok := bytes.CutPrefix(bytes.TrimRight(m.line, "\r"), []byte(m.prefix)); ok && !m.skip {
			if f := bytes.Fields(v); len(f) == 1 && len(f[0]) == len(v) {
				m.matched = string(v)
			}
		}
		m.line, m.skip = m.line[:0], false
		p = p[i+1:]
	}
	return n, nil
}
