package integrations

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aetherium/aetherium/internal/store"
)

// TailBytes bounds the output tail a summary quotes per command.
const TailBytes = 1500

// Headline is a job's outcome in one line: "job <id> succeeded: 3
// commands" or "job <id> failed: command 2 exited 1".
func Headline(n *Notification) string {
	switch n.Job.Status {
	case store.JobSucceeded:
		return fmt.Sprintf("job %s succeeded: %d commands", n.Job.ID, len(n.Executions))
	case store.JobFailed:
		if n.Job.Error != "" {
			return fmt.Sprintf("job %s failed: %s", n.Job.ID, firstLine(n.Job.Error))
		}
		return fmt.Sprintf("job %s failed", n.Job.ID)
	}
	return fmt.Sprintf("job %s is %s", n.Job.ID, n.Job.Status)
}

// Summary is a job's report in Markdown (GitHub and Slack both read it):
// the headline, the link, then each command with its exit code, and the
// tail of the output of the last one (the one that failed, if any).
func Summary(n *Notification) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n", Headline(n))
	if n.Link != "" {
		fmt.Fprintf(&b, "%s\n", n.Link)
	}
	b.WriteString("\n")
	for i, e := range n.Executions {
		fmt.Fprintf(&b, "%d. `%s` → %s\n", i+1, oneLine(e.Command), exit(e))
	}
	if len(n.Executions) > 0 {
		last := n.Executions[len(n.Executions)-1]
		if out := Tail(last.Stdout+last.Stderr, TailBytes); out != "" {
			fmt.Fprintf(&b, "\nOutput of command %d (tail):\n```\n%s\n```\n", len(n.Executions), strings.ReplaceAll(out, "```", "`‵`"))
		}
	}
	return b.String()
}

// Tail is the last max bytes of s, cut at a rune boundary, without
// trailing newlines.
func Tail(s string, max int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) <= max {
		return s
	}
	s = s[len(s)-max:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return "…" + s
}

func exit(e *store.Execution) string {
	switch {
	case e.TimedOut:
		return "timed out"
	case e.Signal != "":
		return "killed by " + e.Signal
	case e.ExitCode != nil:
		return fmt.Sprintf("exit %d", *e.ExitCode)
	case e.Error != "":
		return "error: " + firstLine(e.Error)
	}
	return "no exit code"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// oneLine shortens a command for a list item.
func oneLine(s string) string {
	r := []rune(strings.ReplaceAll(firstLine(s), "`", "'"))
	if len(r) > 120 {
		r = append(r[:119], '…')
	}
	return string(r)
}
