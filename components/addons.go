package components

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"time"

	"github.com/clusterctl/clusterctl/addons"
	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/spec"
)

// ClusterDomain is the cluster's DNS domain (the kubelets' clusterDomain,
// the kubernetes Service's names in the API server certificate).
const ClusterDomain = "cluster.local"

// An add-on is a component of the first control-plane host: its
// generation folder holds the add-on's objects, one file each, and its
// unit is `clusterctl agent addon`, which applies them with server-side
// apply through the host's admin kubeconfig, prunes what the version
// dropped, re-applies every minute, and serves the add-on's health for the
// gate. A new generation is a new set of objects; a rollback switches back
// to the previous set, which the reconciler applies and prunes to.

// addonHealthPort is the loopback port of each add-on's health endpoint.
func addonHealthPort(name string) int {
	switch name {
	case bundle.CoreDNS:
		return 10270
	case bundle.MetricsServer:
		return 10271
	}
	return 10279
}

// addonHosts is where an enabled add-on's reconciler runs: the first
// control-plane host.
func addonHosts(name string) func(*spec.Cluster) []spec.Host {
	return func(c *spec.Cluster) []spec.Host {
		a, ok := c.Addon(name)
		cps := c.HostsRunning(bundle.KubeAPIServer)
		if !ok || !a.Enabled || len(cps) == 0 {
			return nil
		}
		return cps[:1]
	}
}

// addonImages are the bundled images of the add-ons that are on, imported
// on every node (any node may run their pods).
func (in Input) addonImages(host string) ([]Artifact, error) {
	var out []Artifact
	for _, a := range in.Cluster.Addons() {
		if !a.Enabled {
			continue
		}
		arts, err := artifacts(in.Cache, in.platform(host), a.Name, a.Version, a.Name+".tar")
		if err != nil {
			return nil, err
		}
		arts[0].Mode = 0o644
		out = append(out, arts...)
	}
	return out, nil
}

// metricsServer renders the resource metrics add-on, healthy when its
// Deployment is available and its APIService is Available.
func metricsServer(in Input, h spec.Host) (Desired, error) {
	a, _ := in.Cluster.Addon(bundle.MetricsServer)
	m := addons.MetricsServer{Image: bundle.MetricsServerImage(a.Version), Replicas: a.Replicas}
	d, err := addonDesired(bundle.MetricsServer, a.Version, h, m.Objects(), addonHealthPort(bundle.MetricsServer))
	if err != nil {
		return Desired{}, fmt.Errorf("metrics-server: %w", err)
	}
	return d, nil
}

// coreDNS renders the cluster DNS add-on: CoreDNS at the cluster_dns
// address, healthy when its Deployment is available, kubernetes.default
// resolves through every replica and the Service from this host, and from
// a pod on every node (the probe DaemonSet is available).
func coreDNS(in Input, h spec.Host) (Desired, error) {
	a, _ := in.Cluster.Addon(bundle.CoreDNS)
	c := addons.CoreDNS{Image: bundle.CoreDNSImage(a.Version), Version: a.Version, Replicas: a.Replicas,
		ClusterDomain: ClusterDomain, ClusterIP: in.Cluster.ClusterDNS(), Forward: a.Forward}
	if v, ok := in.Cluster.Release().Version(bundle.EchoImage); ok {
		c.ProbeImage = bundle.EchoImageRepo + ":" + v
	}
	port := addonHealthPort(bundle.CoreDNS)
	d, err := addonDesired(bundle.CoreDNS, a.Version, h, c.Objects(), port,
		"--dns-check=kubernetes.default.svc."+ClusterDomain)
	if err != nil {
		return Desired{}, fmt.Errorf("coredns: %w", err)
	}
	return d, nil
}

// addonDesired is the reconciler component of an add-on on h.
func addonDesired(name, version string, h spec.Host, objs []map[string]any, port int, args ...string) (Desired, error) {
	objs, err := addons.Labelled(name, objs)
	if err != nil {
		return Desired{}, err
	}
	var files []File
	for _, o := range objs {
		fn, err := addons.FileName(o)
		if err != nil {
			return Desired{}, err
		}
		b, err := addons.Encode(o)
		if err != nil {
			return Desired{}, err
		}
		files = append(files, File{Path: fn, Data: b, Mode: 0o644})
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	return Desired{
		Component: name, Host: h.Name, Address: advertiseAddress(h), Version: version,
		Config: files,
		Unit: agent.Unit{
			Name: name, Version: version, Exec: AgentBinary,
			Args: append([]string{"agent", "addon", "--name=" + name, "--listen=" + listen,
				"--kubeconfig=" + path.Join(pki.HostKubeDir, pki.KubeconfigAdmin)}, args...),
			Health: agent.Health{Type: agent.HealthHTTP, URL: "http://" + listen + "/healthz",
				Interval: agent.Duration(2 * time.Second), Timeout: agent.Duration(5 * time.Second)},
			StopTimeout: agent.Duration(10 * time.Second),
		},
	}, nil
}

// addonAround deletes a turned-off add-on's objects once its reconciler is
// gone (apply only: destroy takes the whole cluster down anyway, and an
// add-on that moves to another host is applied there).
func addonAround(ctx context.Context, env *Env, ch plan.Change, do func() error) error {
	if err := do(); err != nil || ch.Action != plan.Delete || env.Mode != plan.ModeApply {
		return err
	}
	if a, ok := env.Cluster.Addon(ch.Name); ok && a.Enabled {
		return nil // it moved to another control-plane host, which applies it
	}
	cp, err := env.ControlPlane()
	if err != nil {
		return err
	}
	resp, err := AgentClient{cp}.Call(ctx, agent.Request{Op: agent.OpAddonPrune, Name: ch.Name, Kubeconfig: path.Join(pki.HostKubeDir, pki.KubeconfigAdmin)})
	for _, l := range resp.Log {
		env.Logf("%s: %s", ch.Name, l)
	}
	if err != nil {
		return fmt.Errorf("%s: delete its objects: %w", ch.Name, err)
	}
	return nil
}
