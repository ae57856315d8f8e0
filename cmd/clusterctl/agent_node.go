package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/ctrimages"
	"github.com/clusterctl/clusterctl/kubeapi"
	"github.com/clusterctl/clusterctl/podnet"
)

// newAgentNodeCmds are the on-host helpers of the node components, run by
// the agent as a component (cni) or as health probes (containerd-images,
// node-ready). They are hidden: nobody types them.
func newAgentNodeCmds() []*cobra.Command {
	return []*cobra.Command{newAgentCNICmd(), newAgentContainerdImagesCmd(), newAgentNodeReadyCmd(), newAgentAddonCmd(), newAgentSHA256Cmd()}
}

// newAgentSHA256Cmd prints `sha256sum` lines for the files that exist,
// reading only those changed since the cache recorded them (plan checks
// every installed file of every host with it).
func newAgentSHA256Cmd() *cobra.Command {
	cache := agent.DefaultSumCache
	cmd := &cobra.Command{
		Use:    "sha256sum [--cache FILE] PATH...",
		Short:  "Print the sha256 of files, like sha256sum, from a cache where they did not change",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			sums := agent.SHA256Files(args, cache)
			w := bufio.NewWriter(cmd.OutOrStdout())
			for _, p := range args {
				if s, ok := sums[p]; ok {
					fmt.Fprintf(w, "%s  %s\n", s, p)
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&cache, "cache", cache, "`FILE` of cached digests (\"\" reads every file)")
	return cmd
}

func newAgentCNICmd() *cobra.Command {
	var config, podCIDR string
	var check bool
	cmd := &cobra.Command{
		Use:    "cni --config FILE",
		Short:  "Keep this node's pod network in place: CNI config and plugins, routes to other nodes' pods, masquerading",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, list, err := podnet.Load(config)
			if err != nil {
				return err
			}
			if podCIDR != "" && podCIDR != cfg.PodCIDR.String() {
				return fmt.Errorf("--pod-cidr %s does not match %s's pod_cidr %s", podCIDR, config, cfg.PodCIDR)
			}
			k := podnet.NewKeeper(cfg, list, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
			if check {
				if p := k.Check(cmd.Context()); len(p) > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "pod network of %s is not in place:\n%s\n", cfg.Node, podnet.Problems(p))
					return silentExit(1)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pod network of %s is in place\n", cfg.Node)
				return nil
			}
			return k.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&config, "config", "network.json", "the keeper's `FILE` (network.json of the cni generation)")
	cmd.Flags().StringVar(&podCIDR, "pod-cidr", "", "this node's pod `CIDR`; must match the config (installed.json records it)")
	cmd.Flags().BoolVar(&check, "check", false, "only check the live state once and exit 1 listing what is missing")
	return cmd
}

func newAgentContainerdImagesCmd() *cobra.Command {
	var socket string
	var archives []string
	cmd := &cobra.Command{
		Use:    "containerd-images --archive PATH=SHA256...",
		Short:  "Check containerd and its CRI plugin; import the bundled image archives that are missing (containerd's health probe)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := ctrimages.Options{Socket: socket}
			for _, a := range archives {
				arc, err := ctrimages.ParseArchive(a)
				if err != nil {
					return err
				}
				o.Archives = append(o.Archives, arc)
			}
			res, err := ctrimages.Ensure(cmd.Context(), o)
			for _, name := range res.Imported {
				fmt.Fprintf(cmd.OutOrStdout(), "imported %s\n", name)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "containerd ready; images: %s\n", strings.Join(append(res.Present, res.Imported...), ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "/run/containerd/containerd.sock", "containerd's `SOCKET`")
	cmd.Flags().StringArrayVar(&archives, "archive", nil, "image archive `PATH=SHA256` to import when missing (repeatable)")
	return cmd
}

func newAgentNodeReadyCmd() *cobra.Command {
	var kubeconfig, node, version, healthz string
	cmd := &cobra.Command{
		Use:    "node-ready --kubeconfig FILE --node NAME",
		Short:  "Pass when the kubelet answers and its Node is Ready with the expected kubelet version (the kubelet's health probe)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			if healthz != "" {
				if err := getOK(ctx, healthz); err != nil {
					return fmt.Errorf("kubelet health: %w", err)
				}
			}
			c, err := kubeapi.Load(kubeconfig)
			if err != nil {
				return err
			}
			defer c.Close()
			n, err := c.GetNode(ctx, node)
			if kubeapi.IsNotFound(err) {
				return fmt.Errorf("node %s is not registered yet", node)
			}
			if err != nil {
				return fmt.Errorf("node %s: %w", node, err)
			}
			if v := n.Status.NodeInfo.KubeletVersion; version != "" && v != version {
				return fmt.Errorf("node %s reports kubelet %s, want %s", node, v, version)
			}
			if ok, why := n.Ready(); !ok {
				return fmt.Errorf("node %s is not ready: %s", node, why)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s is Ready (kubelet %s)\n", node, n.Status.NodeInfo.KubeletVersion)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "/etc/kubernetes/kubelet.conf", "the kubelet's kubeconfig `FILE`")
	f.StringVar(&node, "node", "", "the Node's `NAME`")
	f.StringVar(&version, "kubelet-version", "", "the `VERSION` (v1.37.2) the node must report; empty accepts any")
	f.StringVar(&healthz, "healthz", "", "the kubelet's local healthz `URL` to check first")
	_ = cmd.MarkFlagRequired("node")
	return cmd
}

// getOK fails unless GET url answers 2xx.
func getOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
