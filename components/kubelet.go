package components

import (
	"fmt"
	"path"
	"time"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/templates"
)

// kubeletConfig is what templates/kubelet-config.yaml.tmpl needs.
type kubeletConfig struct {
	Node            string
	ClientCAFile    string
	Address         string
	HealthzPort     int
	TLSCertFile     string
	TLSKeyFile      string
	RuntimeEndpoint string
	CgroupDriver    string
	CgroupRoot      string // lab hosts only
	AllowCgroupV1   bool
	FailSwapOn      bool
	ClusterDomain   string
	ClusterDNS      []string
	ResolvConf      string
	Taints          []spec.Taint
	TLSMinVersion   string
	TLSCipherSuites []string
	PodPidsLimit    int
}

// kubelet renders one node's kubelet: its own client certificate
// (system:node:NAME in system:nodes) in kubelet.conf, a serving
// certificate for the node's names and IPs, webhook authentication and
// authorization with the cluster CA, no read-only port, cgroup settings
// from the host's facts, and the node's labels and taints. Its health gate
// passes once the node is Ready and reports this kubelet's version.
func kubelet(in Input, h spec.Host) (Desired, error) {
	f, err := in.facts(h.Name)
	if err != nil {
		return Desired{}, err
	}
	addr, err := nodeAddress(h)
	if err != nil {
		return Desired{}, err
	}
	version := in.version(bundle.Kubelet)
	arts, err := artifacts(in.Cache, in.platform(h.Name), bundle.Kubelet, version, bundle.Kubelet)
	if err != nil {
		return Desired{}, err
	}
	p := pki.HostPath
	serving := pki.IDKubeletServing(h.Name)
	cfg := kubeletConfig{
		Node:            h.Name,
		ClientCAFile:    p(pki.IDClusterCA + ".crt"),
		Address:         "0.0.0.0",
		HealthzPort:     KubeletHealthzPort,
		TLSCertFile:     p(serving + ".crt"),
		TLSKeyFile:      p(serving + ".key"),
		RuntimeEndpoint: "unix://" + ContainerdSocket,
		CgroupDriver:    "cgroupfs",
		AllowCgroupV1:   f.CgroupVersion == 1,
		FailSwapOn:      !f.SwapOn,
		ClusterDomain:   ClusterDomain,
		ClusterDNS:      []string{in.Cluster.ClusterDNS().String()},
		ResolvConf:      "/etc/resolv.conf",
		Taints:          nodeTaints(h),
		TLSMinVersion:   TLSMinVersion,
		TLSCipherSuites: TLSCipherSuites(),
		PodPidsLimit:    in.Cluster.Security().PodPidsLimit,
	}
	if systemdCgroups(f) {
		cfg.CgroupDriver = "systemd"
	}
	// Lab hosts share one kernel: each kubelet gets the cgroup subtree the
	// lab made for its host. Real hosts never have a lab marker.
	if lab, ok := in.Lab[h.Name]; ok && lab.CgroupRoot != "" {
		cfg.CgroupRoot = lab.CgroupRoot
	}
	yaml, err := templates.Render(templates.KubeletConfig, cfg)
	if err != nil {
		return Desired{}, fmt.Errorf("kubelet on %s: %w", h.Name, err)
	}
	shared, err := in.pkiFiles(pki.IDClusterCA+".crt", serving+".crt", serving+".key")
	if err != nil {
		return Desired{}, fmt.Errorf("kubelet on %s: %w", h.Name, err)
	}
	kc, err := in.kubeconfigFile(pki.KubeconfigKubelet(h.Name), KubeletConfFile)
	if err != nil {
		return Desired{}, fmt.Errorf("kubelet on %s: %w", h.Name, err)
	}
	meta, err := DesiredNodeMeta(h).marshal()
	if err != nil {
		return Desired{}, err
	}
	selfLabels, _ := splitLabels(nodeLabels(h))
	args := map[string]string{
		"config":            "kubelet-config.yaml",
		"kubeconfig":        KubeletConfFile,
		"hostname-override": h.Name,
		"node-ip":           addr.String(),
	}
	if len(selfLabels) > 0 {
		args["node-labels"] = joinLabels(selfLabels)
	}
	return Desired{
		Component: bundle.Kubelet, Host: h.Name, Address: addr.String(), Version: version,
		Artifacts: arts, Shared: append(shared, kc),
		Config: []File{
			{Path: "kubelet-config.yaml", Data: yaml, Mode: 0o600}, // CIS 4.1.9
			// Not read by the kubelet: what apply sets on the Node (SyncNode).
			{Path: "node-meta.json", Data: meta, Mode: 0o644},
		},
		Dirs: []Dir{{Path: KubeletDir, Mode: 0o700}, {Path: path.Join(KubeletDir, "volumeplugins"), Mode: 0o755}},
		Unit: agent.Unit{
			Name: bundle.Kubelet, Version: version,
			Exec:  arts[0].Dest,
			Args:  mergeArgs(args, in.extraArgs(bundle.Kubelet)),
			After: []string{bundle.Containerd},
			Health: agent.Health{
				Type: agent.HealthExec,
				Command: []string{AgentBinary, "agent", "node-ready",
					"--kubeconfig=" + KubeletConfFile, "--node=" + h.Name, "--kubelet-version=v" + version,
					"--healthz=" + url("http", "127.0.0.1", KubeletHealthzPort) + "/healthz"},
				// Each probe starts a process and asks the API server; the agent
				// probes faster while a new process is being gated.
				Interval: agent.Duration(2 * time.Second),
				Timeout:  agent.Duration(10 * time.Second),
			},
			Limits: agent.Limits{NOFILE: 1048576},
		},
	}, nil
}
