package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/splice"
)

func newPortForwardCmd(g *globals) *cobra.Command {
	var address string
	cmd := &cobra.Command{
		Use: "port-forward VM [LOCAL:]REMOTE", ValidArgsFunction: completeVM(g, false),
		Short: "Forward a local TCP port to a port inside a sandbox, until interrupted",
		Long: "Listens on LOCAL (omitted: the same as REMOTE; 0: any free port) and connects each\n" +
			"connection to 127.0.0.1:REMOTE inside the sandbox through its agent, so the sandbox needs no\n" +
			"network and a service bound to its loopback is reached too. Prints the address it listens on.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			local, remote, err := parsePorts(args[1])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			vm, err := c.GetVM(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(local)))
			if err != nil {
				return fmt.Errorf("listen on %s:%d: %w (pick another local port: LOCAL:%d)", address, local, err, remote)
			}
			defer l.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "Forwarding %s -> %s:%d\n", l.Addr(), vm.Name, remote)
			return forward(cmd.Context(), l, c, vm.ID, remote, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&address, "address", "127.0.0.1", "local address to listen on")
	return cmd
}

// parsePorts reads LOCAL:REMOTE or REMOTE.
func parsePorts(s string) (local, remote int, err error) {
	ls, rs, ok := strings.Cut(s, ":")
	if !ok {
		ls, rs = s, s
	}
	local, lerr := strconv.Atoi(ls)
	remote, rerr := strconv.Atoi(rs)
	if lerr != nil || rerr != nil || local < 0 || local > 65535 || remote < 1 || remote > 65535 {
		return 0, 0, fmt.Errorf("%q: want [LOCAL:]REMOTE, ports between 1 and 65535 (LOCAL 0: any free port)", s)
	}
	return local, remote, nil
}

// forward serves connections on l until ctx ends.
func forward(ctx context.Context, l net.Listener, c *client.Client, vm string, port int, errOut io.Writer) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			remote, err := c.DialPort(ctx, vm, port)
			if err != nil {
				fmt.Fprintf(errOut, "aether: connection from %s: %v\n", conn.RemoteAddr(), err)
				return
			}
			defer remote.Close()
			splice.Conns(conn, remote)
		}()
	}
}
