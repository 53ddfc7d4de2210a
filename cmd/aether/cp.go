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
				in, size, closeIn, err := openLocal(args[0])
				if err != nil {
					return err
				}
				defer closeIn()
				bar := newProgress("uploading "+filepath.Base(args[0]), true)
				bar.set(0, size, "")
				n, err := c.PutFile(cmd.Context(), dstVM, dstPath, mode, bar.reader(in))
				bar.finish()
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

// openLocal opens a local file (or stdin for -) and returns its size (0:
// unknown).
func openLocal(p string) (io.Reader, int64, func(), error) {
	if p == "-" {
		return os.Stdin, 0, func() {}, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, nil, err
	}
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, func() { f.Close() }, nil
}

// download writes to a temporary file renamed into place, so a failed copy
// never leaves a truncated local file.
func download(cmd *cobra.Command, c *client.Client, vm, path, dst string) error {
	if dst == "-" {
		return getFile(cmd, c, vm, path, cmd.OutOrStdout())
	}
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		dst = filepath.Join(dst, filepath.Base(path))
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".aether-cp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := getFile(cmd, c, vm, path, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// getFile downloads path into w with a progress line (on a terminal, after
// a second). A transfer cut short is an error.
func getFile(cmd *cobra.Command, c *client.Client, vm, path string, w io.Writer) error {
	resp, err := c.OpenFile(cmd.Context(), vm, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	bar := newProgress("downloading "+filepath.Base(path), true)
	bar.set(0, max(resp.ContentLength, 0), "")
	n, err := io.Copy(w, bar.reader(resp.Body))
	bar.finish()
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("download of %s ended after %d of %d bytes", path, n, resp.ContentLength)
	}
	return err
}
