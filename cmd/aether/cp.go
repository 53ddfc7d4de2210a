package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/client"
)

func newCpCmd(g *globals) *cobra.Command {
	var mode uint32
	cmd := &cobra.Command{
		Use:     "cp SRC DST",
		Short:   "Copy a file into or out of a sandbox (VM:PATH on one side; - is stdin/stdout)",
		Example: "  aether cp ./build.sh demo:/root/build.sh\n  aether cp demo:/etc/os-release -",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			srcVM, srcPath, srcRemote := splitRemote(args[0])
			dstVM, dstPath, dstRemote := splitRemote(args[1])
			switch {
			case srcRemote == dstRemote:
				return fmt.Errorf("exactly one of SRC and DST must be VM:PATH")
			case dstRemote:
				in, closeIn, err := openLocal(args[0])
				if err != nil {
					return err
				}
				defer closeIn()
				n, err := c.PutFile(cmd.Context(), dstVM, dstPath, mode, in)
				if err == nil && g.verbose {
					fmt.Fprintf(os.Stderr, "%d bytes copied\n", n)
				}
				return err
			default:
				return download(cmd, c, srcVM, srcPath, args[1])
			}
		},
	}
	cmd.Flags().Uint32Var(&mode, "mode", 0, "permission bits for an upload, in octal via 0o… (default 0644)")
	return cmd
}

// splitRemote recognises VM:PATH (a path starting with / after the colon).
func splitRemote(s string) (vm, path string, ok bool) {
	vm, path, ok = strings.Cut(s, ":")
	if !ok || vm == "" || !strings.HasPrefix(path, "/") {
		return "", "", false
	}
	return vm, path, true
}

func openLocal(p string) (io.Reader, func(), error) {
	if p == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// download writes to a temporary file renamed into place, so a failed copy
// never leaves a truncated local file.
func download(cmd *cobra.Command, c *client.Client, vm, path, dst string) error {
	if dst == "-" {
		_, err := c.GetFile(cmd.Context(), vm, path, cmd.OutOrStdout())
		return err
	}
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		dst = filepath.Join(dst, filepath.Base(path))
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".aether-cp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := c.GetFile(cmd.Context(), vm, path, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
