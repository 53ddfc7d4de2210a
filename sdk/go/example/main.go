// Command example is the Go SDK's runnable example: it creates a sandbox,
// writes a file into it, runs a command that reads it, and deletes the
// sandbox. Run it against a server:
//
//	AETHER_URL=http://127.0.0.1:8080 AETHER_API_KEY=$(cat aether-data/admin.key) go run ./sdk/go/example
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	c, err := client.New(os.Getenv("AETHER_URL"), nil)
	if err != nil {
		return err
	}
	c = c.WithKey(os.Getenv("AETHER_API_KEY"))
	sb, err := c.CreateSandbox(ctx, &client.CreateVMRequest{Name: "go-sdk-example"})
	if err != nil {
		return err
	}
	defer sb.Close()
	if err := sb.WriteFile(ctx, "/tmp/greeting.txt", []byte("hello from the Go SDK\n"), 0o644); err != nil {
		return err
	}
	res, err := sb.RunRequest(ctx, &apiv1.ExecRequest{Command: "cat", Args: []string{"/tmp/greeting.txt"}}, nil)
	if err != nil {
		return err
	}
	fmt.Printf("exit %d: %s", res.Code(), res.Stdout)
	return nil
}
