package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/addons"
	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/kubeapi"
)

// newAgentAddonCmd keeps one add-on applied: the agent runs it on a
// control-plane host as the add-on's component, in its generation folder.
func newAgentAddonCmd() *cobra.Command {
	var name, kubeconfig, listen, dns, dir string
	var resync time.Duration
	cmd := &cobra.Command{
		Use:    "addon --name NAME",
		Short:  "Apply an add-on's objects (server-side apply), prune what it dropped, and serve its health on --listen",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := addons.ReadDir(dir)
			if err != nil {
				return err
			}
			client, err := kubeapi.Load(kubeconfig)
			if err != nil {
				return err
			}
			defer client.Close()
			r := &addons.Reconciler{Client: client, Name: name, Objects: objs, DNS: dns}
			return r.Run(cmd.Context(), listen, resync, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the add-on's `NAME` (its objects carry the label "+addons.Label+"=NAME)")
	f.StringVar(&dir, "dir", ".", "`DIR` with the add-on's manifest.*.json files")
	f.StringVar(&kubeconfig, "kubeconfig", "/etc/kubernetes/admin.conf", "administrator kubeconfig `FILE`")
	f.StringVar(&listen, "listen", "127.0.0.1:10270", "`ADDRESS` of the health endpoint (GET /healthz)")
	f.StringVar(&dns, "dns-check", "", "a `NAME` the add-on's DNS endpoints must resolve to be healthy")
	f.DurationVar(&resync, "resync", time.Minute, "re-apply and prune this often")
	cmd.MarkFlagRequired("name")
	return cmd
}

// addonPruneCall deletes every object of an add-on that was turned off.
func addonPruneCall(ctx context.Context, req agent.Request) (agent.Response, error) {
	if err := agent.ValidName(req.Name); err != nil {
		return agent.Response{}, err
	}
	client, err := kubeapi.Load(req.Kubeconfig)
	if err != nil {
		return agent.Response{}, err
	}
	defer client.Close()
	deleted, err := (&addons.Reconciler{Client: client, Name: req.Name}).Prune(ctx)
	resp := agent.Response{OK: err == nil}
	for _, d := range deleted {
		resp.Log = append(resp.Log, "deleted "+d.String())
	}
	return resp, err
}
