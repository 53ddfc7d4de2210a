// Command aetherd is the Aetherium daemon: the REST API and a worker in one
// process by default (--role all), or either alone (--role api|worker).
// `aetherd migrate up|down|version|force N` manages the store's schema;
// `aetherd network prepare N` makes a TAP pool for an unprivileged aetherd;
// `aetherd key create|list|revoke` manages API keys in the store directly.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "migrate":
		err = runMigrate(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "network":
		err = runNetwork(ctx, os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "key":
		err = runKey(ctx, os.Args[2:])
	default:
		err = run(ctx, os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "aetherd:", err)
		os.Exit(1)
	}
}
