package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/client"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Build sandbox images on the server"}
	spec := &client.ImageSpec{}
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the default sandbox image (Debian via mmdebstrap, unprivileged, imported into Docker); cached",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			acc, err := c.BuildImage(cmd.Context(), spec)
			if err != nil {
				return err
			}
			t, err := waitTask(cmd, g, c, acc.TaskID, "building image")
			if err != nil {
				return err
			}
			var res struct {
				Ref    string `json:"ref"`
				ID     string `json:"id"`
				Cached bool   `json:"cached"`
			}
			json.Unmarshal(t.Result, &res)
			return g.print(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				how := "built"
				if res.Cached {
					how = "already present (cached)"
				}
				fmt.Fprintf(tw, "image %s %s\t%s\n", res.Ref, how, res.ID)
			})
		},
	}
	build.Flags().StringVar(&spec.Ref, "ref", "", "image reference (default aetherium/base:bookworm)")
	build.Flags().StringVar(&spec.Suite, "suite", "", "Debian suite (default bookworm)")
	build.Flags().StringSliceVar(&spec.Include, "include", nil, "Debian packages to add (default ca-certificates,git,curl)")
	build.Flags().BoolVar(&spec.Force, "force", false, "rebuild even if the image exists")
	cmd.AddCommand(build)
	return cmd
}

func newHealthCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "health", Short: "Show the server's health", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			h, err := c.Health(cmd.Context())
			if err != nil {
				return err
			}
			g.output = "json"
			return g.print(cmd.OutOrStdout(), h, nil)
		},
	}
}
