// Command aether is Aetherium's CLI. It is a thin client of the REST API
// (AETHER_SERVER, default http://127.0.0.1:8080) and holds no state. It
// authenticates with AETHER_API_KEY, else the bootstrap key file of the
// local aetherd ($AETHER_DATA_DIR/admin.key, else ./aether-data/admin.key).
// A key the server refuses ends it with one line and exit code 2; any other
// error with one line and exit code 1. The line is the API's message and,
// where one helps, what to do next (hints.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aetherium/aetherium/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case client.IsUnauthenticated(err):
		fmt.Fprintln(os.Stderr, errorLine(err))
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, errorLine(err))
		os.Exit(1)
	}
}

// exitError ends the CLI with a specific code and no message (exec passes
// the remote command's exit code through).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }
