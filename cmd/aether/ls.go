package main

import (
	"fmt"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "ls VM PATH", ValidArgsFunction: completeVM(g, false), Args: cobra.ExactArgs(2),
		Short: "List a directory in a sandbox",
		Long:  "Entries as lstat sees them (symlinks are shown with their target, never followed), at most 10,000.",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListDir(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if l.Truncated {
				fmt.Fprintln(os.Stderr, "aether: the directory has more entries than the 10,000 listed")
			}
			return g.print(cmd.OutOrStdout(), l, func(tw *tabwriter.Writer) { printDirRows(tw, l.Entries, g.wide()) })
		},
	}
}

func printDirRows(tw *tabwriter.Writer, entries []apiv1.DirEntry, wide bool) {
	if wide {
		fmt.Fprintln(tw, "MODE\tSIZE\tMODIFIED\tNAME")
	} else {
		fmt.Fprintln(tw, "TYPE\tSIZE\tNAME")
	}
	for _, e := range entries {
		name := printable(e.Name)
		if e.Target != "" {
			name += " -> " + printable(e.Target)
		}
		if wide {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", modeString(e), e.Size, e.MTime.Local().Format(time.DateTime), name)
		} else {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", e.Type, e.Size, name)
		}
	}
}

// modeString renders an entry's type and permission bits like ls -l.
func modeString(e apiv1.DirEntry) string {
	m := fs.FileMode(e.Mode & 0o777)
	switch e.Type {
	case apiv1.EntryDir:
		m |= fs.ModeDir
	case apiv1.EntrySymlink:
		m |= fs.ModeSymlink
	case apiv1.EntryOther:
		m |= fs.ModeIrregular
	}
	if e.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if e.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if e.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m.String()
}
