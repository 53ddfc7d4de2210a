package cluster

import (
	"fmt"
	"syscall"
)

// signals are the signals a client may send to a terminal, by name.
var signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT, "SIGKILL": syscall.SIGKILL,
	"SIGTERM": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2, "SIGTSTP": syscall.SIGTSTP,
	"SIGCONT": syscall.SIGCONT, "SIGWINCH": syscall.SIGWINCH,
}

// SignalNumber returns the number of a signal a client may send ("SIGINT"
// or "INT"), and false for any other name.
func SignalNumber(name string) (int, bool) {
	if s, ok := signals[name]; ok {
		return int(s), true
	}
	s, ok := signals["SIG"+name]
	return int(s), ok
}

// SignalName is SignalNumber's inverse ("SIG<n>" for a signal it lacks).
func SignalName(sig int) string {
	for name, s := range signals {
		if int(s) == sig {
			return name
		}
	}
	return fmt.Sprintf("SIG%d", sig)
}
