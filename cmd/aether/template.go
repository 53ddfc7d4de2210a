package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
)

func newTemplateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "template", Short: "Build, list and delete templates (images with tools baked in)"}
	cmd.AddCommand(newTemplateBuildCmd(g), newTemplateListCmd(g), newTemplateRmCmd(g), newTemplatePoolCmd(g))
	return cmd
}

func newTemplateBuildCmd(g *globals) *cobra.Command {
	req := &client.TemplateRequest{}
	cmd := &cobra.Command{
		Use:     "build NAME",
		Short:   "Build a template once; building the same spec again is a cache hit",
		Example: "  aether template build node20 --tool nodejs@20 --tool bun --setup 'npm i -g pnpm'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			acc, err := c.CreateTemplate(cmd.Context(), req)
			if err != nil {
				return err
			}
			if acc.Status != store.TemplateReady {
				if _, err := waitTask(cmd, g, c, acc.TaskID, "building template "+req.Name); err != nil {
					return err
				}
			}
			tpl, err := c.GetTemplate(cmd.Context(), acc.TemplateID)
			if err != nil {
				return err
			}
			if acc.Cached && acc.Status == store.TemplateReady {
				fmt.Fprintf(cmd.ErrOrStderr(), "template %s is up to date (cache hit)\n", tpl.Name)
			}
			return printTemplates(g, cmd, tpl)
		},
	}
	cmd.Flags().StringVar(&req.Base, "base", "", "base image (default: the server's default image)")
	cmd.Flags().StringArrayVar(&req.Tools, "tool", nil, "tool to bake in, as name or name@version; npm:pkg and go:module install through mise (repeatable)")
	cmd.Flags().StringArrayVar(&req.Setup, "setup", nil, "shell command to run after the tools (repeatable, in order)")
	cmd.Flags().IntVar(&req.PoolSize, "pool", 0, "started sandboxes to keep ready (warm pool)")
	return cmd
}

func newTemplateListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List templates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.ListTemplates(cmd.Context())
			if err != nil {
				return err
			}
			return printTemplates(g, cmd, list...)
		},
	}
}

func newTemplateRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "rm NAME...", Short: "Delete templates and their images", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return deleteEach(cmd, g, args, "deleting template", true, func(c *client.Client, name string) (*apiv1.Accepted, error) {
				return c.DeleteTemplate(cmd.Context(), name)
			})
		},
	}
}

func printTemplates(g *globals, cmd *cobra.Command, list ...*apiv1.Template) error {
	var v any = list
	if len(list) == 1 {
		v = list[0]
	}
	return g.print(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "NAME\tSTATUS\tPOOL\tTOOLS\tIMAGE\tCREATED")
		for _, t := range list {
			var tools []string
			for k, v := range t.ToolsInstalled {
				tools = append(tools, k+"@"+v)
			}
			slices.Sort(tools)
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", t.Name, t.Status, t.PoolSize, strings.Join(tools, ","), t.Image,
				t.CreatedAt.Local().Format(time.DateTime))
		}
	})
}

func newTemplatePoolCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "pool NAME SIZE", Short: "Keep SIZE started sandboxes of the template ready (0 turns the pool off)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			size, err := strconv.Atoi(args[1])
			if err != nil {
				return fmt.Errorf("SIZE: %q is not a number", args[1])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			tpl, err := c.SetPoolSize(cmd.Context(), args[0], size)
			if err != nil {
				return err
			}
			return printTemplates(g, cmd, tpl)
		},
	}
}
