package logs

import (
	"context"
	"log/slog"
	"strings"
)

// SlogHandler passes records to next and also emits them into a pipeline as
// aetherd's own records (stream aetherd): the message and its attributes
// as key=value text, with vm_id (or sandbox_id), task_id and execution_id
// attributes lifted into labels. It never blocks on the pipeline.
type SlogHandler struct {
	next   slog.Handler
	p      *Pipeline
	labels Labels
	attrs  []string
	group  string
}

// NewSlogHandler returns a handler teeing to next and p.
func NewSlogHandler(next slog.Handler, p *Pipeline) *SlogHandler {
	return &SlogHandler{next: next, p: p, labels: Labels{Stream: StreamAetherd}}
}

// Enabled implements slog.Handler.
func (h *SlogHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *SlogHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	labels := h.labels
	labels.Level = strings.ToLower(r.Level.String())
	if i := strings.IndexAny(labels.Level, "+-"); i > 0 {
		labels.Level = labels.Level[:i]
	}
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a)
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + h.attr(&labels, a))
		return true
	})
	h.p.Emit(Record{Time: r.Time, Labels: labels, Line: b.String()})
	return err
}

// attr formats a as key=value and lifts IDs into labels.
func (h *SlogHandler) attr(l *Labels, a slog.Attr) string {
	key := a.Key
	if h.group != "" {
		key = h.group + "." + key
	}
	v := a.Value.Resolve().String()
	switch key {
	case "vm_id", "sandbox_id":
		l.VMID = v
	case "task_id":
		l.TaskID = v
	case "execution_id":
		l.ExecutionID = v
	}
	if strings.ContainsAny(v, " \"=") {
		v = `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
	}
	return key + "=" + v
}

// WithAttrs implements slog.Handler.
func (h *SlogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	c.attrs = append([]string(nil), h.attrs...)
	for _, a := range attrs {
		c.attrs = append(c.attrs, c.attr(&c.labels, a))
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *SlogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
