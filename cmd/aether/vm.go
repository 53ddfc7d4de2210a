package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
)

func newVMCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "Create, list, inspect and delete sandboxes"}
	cmd.AddCommand(newVMCreateCmd(g), newVMListCmd(g), newVMGetCmd(g), newVMRmCmd(g), newVMPauseCmd(g, true),
		newVMPauseCmd(g, false), newVMSnapshotCmd(g), newVMPullRequestCmd(g), newVMTimeoutCmd(g), newVMConsoleCmd(g))
	return cmd
}

func newVMCreateCmd(g *globals) *cobra.Command {
	req := &client.CreateVMRequest{}
	var noWait, wait bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a sandbox and wait until it is ready",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("wait") && cmd.Flags().Changed("no-wait") {
				return errors.New("--wait and --no-wait: give one")
			}
			noWait = noWait || !wait
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			acc, err := c.CreateVM(cmd.Context(), req)
			if err != nil {
				return err
			}
			if noWait {
				return g.print(cmd.OutOrStdout(), acc, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "task %s\tvm %s\t%s\n", acc.TaskID, acc.VMID, acc.Status)
				})
			}
			if _, err := waitTask(cmd, g, c, acc.TaskID, "creating "+req.Name); err != nil {
				return err
			}
			vm, err := c.GetVM(cmd.Context(), acc.VMID)
			if err != nil {
				return err
			}
			return printVMs(g, cmd, vm)
		},
	}
	cmd.Flags().IntVar(&req.VCPUs, "vcpus", 0, "CPU cores (default 1)")
	cmd.Flags().IntVar(&req.MemoryMB, "memory", 0, "memory in MiB (default 512)")
	cmd.Flags().StringVar(&req.Image, "image", "", "image (default: the server's default image)")
	cmd.Flags().StringVar(&req.Template, "template", "", "template to create from (tools baked in)")
	cmd.Flags().StringArrayVar(&req.AdditionalTools, "tool", nil, "tool to install, as name or name@version; npm:pkg and go:module install through mise (repeatable)")
	cmd.Flags().IntVar(&req.TimeoutSeconds, "ttl", 0, "expire after this many seconds (0: never)")
	cmd.Flags().IntVar(&req.IdleTimeout, "idle-timeout", 0, "expire after this many seconds without exec or file transfer")
	cmd.Flags().StringVar(&req.OnExpire, "on-expire", "", "delete (default) or pause")
	cmd.Flags().BoolVar(&req.KeepOnFailure, "keep-on-failure", false, "keep the sandbox, marked failed, if tool installation fails")
	cmd.Flags().StringVar(&req.Egress, "egress", "", "what the sandbox may connect to: internet (public addresses only), none, or a comma-separated allowlist of IPv4 addresses, CIDRs and hostnames (default: the template's, else the server's)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the task and return at once")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until the sandbox is running (the default; --wait=false is --no-wait)")
	return cmd
}

// waitTask waits for a task, showing progress on stderr, and turns a failed
// task into an error.
func waitTask(cmd *cobra.Command, g *globals, c *client.Client, id, what string) (*apiv1.Task, error) {
	bar := newProgress(what, false) // on a terminal: a bar when the task reports steps ("2/3")
	last := ""
	t, err := c.WaitTask(cmd.Context(), id, func(t *apiv1.Task) {
		note := t.Status
		if t.Progress != "" {
			note += " — " + t.Progress
		}
		done, total, _ := taskSteps(t.Progress)
		bar.set(done, total, note)
		if bar.w == nil && note != last && g.verbose {
			fmt.Fprintln(os.Stderr, what+": "+note)
		}
		last = note
	})
	bar.finish()
	if err != nil {
		return nil, err
	}
	if t.Status == store.TaskFailed {
		return t, fmt.Errorf("%s failed: %s", what, t.Error)
	}
	return t, nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printVMs(g *globals, cmd *cobra.Command, vms ...*apiv1.VM) error {
	var v any = vms
	if len(vms) == 1 {
		v = vms[0]
	}
	return g.print(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
		head := "NAME\tID\tSTATUS\tVCPUS\tMEMORY\tIP\tIMAGE\tCREATED"
		if g.wide() {
			head += "\tTEMPLATE\tEXPIRES\tEGRESS\tWORKER\tRUNTIME\tERROR"
		}
		fmt.Fprintln(tw, head)
		for _, vm := range vms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%dM\t%s\t%s\t%s", vm.Name, vm.ID, vm.Status, vm.VCPUs, vm.MemoryMB,
				orDash(vm.IPAddress), vm.Image, vm.CreatedAt.Local().Format(time.DateTime))
			if g.wide() {
				expires := "-"
				if vm.ExpiresAt != nil {
					expires = vm.ExpiresAt.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\t%s", orDash(vm.Template), expires, orDash(vm.Egress),
					orDash(vm.WorkerID), vm.Runtime, orDash(vm.Error))
			}
			fmt.Fprintln(tw)
		}
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// completeVM completes a command's first argument (every argument with
// all) with the names of the project's sandboxes: shell completion asks the
// server.
func completeVM(g *globals, all bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 && !all {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := g.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		vms, err := c.ListVMs(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []cobra.Completion
		for _, vm := range vms {
			if strings.HasPrefix(vm.Name, toComplete) {
				names = append(names, cobra.CompletionWithDesc(vm.Name, vm.Status))
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func newVMListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List sandboxes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			vms, err := c.ListVMs(cmd.Context())
			if err != nil {
				return err
			}
			return printVMs(g, cmd, vms...)
		},
	}
}

func newVMGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "get VM", ValidArgsFunction: completeVM(g, false), Short: "Show one sandbox", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			vm, err := c.GetVM(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printVMs(g, cmd, vm)
		},
	}
}

func newVMConsoleCmd(g *globals) *cobra.Command {
	var maxBytes int
	cmd := &cobra.Command{
		Use: "console VM", ValidArgsFunction: completeVM(g, false), Short: "Print the end of a microVM's serial console", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.Console(cmd.Context(), args[0], maxBytes)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().IntVar(&maxBytes, "bytes", 64<<10, "print at most this many bytes from the end")
	return cmd
}

func newVMRmCmd(g *globals) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use: "rm VM...", ValidArgsFunction: completeVM(g, true), Aliases: []string{"delete"}, Short: "Delete sandboxes", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return deleteEach(cmd, g, args, "deleting", !noWait, func(c *client.Client, name string) (*apiv1.Accepted, error) {
				return c.DeleteVM(cmd.Context(), name)
			})
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the deletion is queued")
	return cmd
}

// deleteEach queues a deletion per name, optionally waiting for each, and
// prints each name once done.
func deleteEach(cmd *cobra.Command, g *globals, names []string, what string, wait bool, del func(*client.Client, string) (*apiv1.Accepted, error)) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	for _, name := range names {
		acc, err := del(c, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if wait {
			if _, err := waitTask(cmd, g, c, acc.TaskID, what+" "+name); err != nil {
				return err
			}
		}
		fmt.Fprintln(cmd.OutOrStdout(), name)
	}
	return nil
}

func newVMPauseCmd(g *globals, pause bool) *cobra.Command {
	use, short := "resume VM", "Thaw a paused sandbox"
	if pause {
		use, short = "pause VM", "Freeze a sandbox (memory kept; commands refused until resumed)"
	}
	return &cobra.Command{
		Use: use, ValidArgsFunction: completeVM(g, false), Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			call := c.Resume
			if pause {
				call = c.Pause
			}
			acc, err := call(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if _, err := waitTask(cmd, g, c, acc.TaskID, strings.Fields(use)[0]+" "+args[0]); err != nil {
				return err
			}
			vm, err := c.GetVM(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printVMs(g, cmd, vm)
		},
	}
}

func newVMSnapshotCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "snapshot VM TEMPLATE", ValidArgsFunction: completeVM(g, false), Short: "Save a sandbox's filesystem as a new template", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			acc, err := c.Snapshot(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if _, err := waitTask(cmd, g, c, acc.TaskID, "snapshot of "+args[0]); err != nil {
				return err
			}
			tpl, err := c.GetTemplate(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			return printTemplates(g, cmd, tpl)
		},
	}
}

func newVMPullRequestCmd(g *globals) *cobra.Command {
	var req apiv1.PullRequestRequest
	cmd := &cobra.Command{
		Use: "pr VM --repo OWNER/NAME --path DIR --branch BRANCH --title TITLE", ValidArgsFunction: completeVM(g, false),
		Short: "Push the sandbox's git commit at DIR as BRANCH and open a GitHub pull request (the token stays on the server)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			acc, err := c.PullRequest(cmd.Context(), args[0], &req)
			if err != nil {
				return err
			}
			t, err := waitTask(cmd, g, c, acc.TaskID, "pull request from "+args[0])
			if err != nil {
				return err
			}
			var res apiv1.PullRequestResult
			if err := json.Unmarshal(t.Result, &res); err != nil {
				return fmt.Errorf("pull request task %s: result: %w", t.ID, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.URL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Repo, "repo", "", "repository, owner/name")
	f.StringVar(&req.Path, "path", "", "the git working tree in the sandbox (absolute)")
	f.StringVar(&req.Branch, "branch", "", "branch to push")
	f.StringVar(&req.Base, "base", "main", "branch the pull request merges into")
	f.StringVar(&req.Title, "title", "", "pull request title")
	f.StringVar(&req.Body, "body", "", "pull request body")
	return cmd
}

func newVMTimeoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "timeout VM SECONDS", ValidArgsFunction: completeVM(g, false), Short: "Set the sandbox to expire SECONDS from now (0: never)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			secs, err := strconv.Atoi(args[1])
			if err != nil {
				return fmt.Errorf("SECONDS: %q is not a number", args[1])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			vm, err := c.SetTimeout(cmd.Context(), args[0], secs)
			if err != nil {
				return err
			}
			return printVMs(g, cmd, vm)
		},
	}
}
