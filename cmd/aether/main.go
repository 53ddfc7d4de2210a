// Command aether is Aetherium's CLI. It is a thin client of the REST API
// (AETHER_SERVER, default http://127.0.0.1:8080) and holds no state.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "aether:", err)
		os.Exit(1)
	}
}

// exitError ends the CLI with a specific code and no message (exec passes
// the remote command's exit code through).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }
