package components

import (
	"encoding/json"
	"fmt"
	"path"
	"time"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/templates"
)

// containerdConfig is what templates/containerd-config.toml.tmpl needs.
type containerdConfig struct {
	Host                string
	Root, State, Socket string
	SandboxImage        string
	ShimPath, RuncPath  string
	SystemdCgroup       bool
	RestrictOOMScoreAdj bool
	CNIBinDir           string
	CNIConfDir          string
	RegistriesDir       string
}

// bundledImages are the image archives every node imports: the pause
// image (the pod sandbox), the test image and the add-ons' images.
func (in Input) bundledImages(host string) ([]Artifact, error) {
	var out []Artifact
	for _, img := range []struct{ component, file string }{
		{bundle.PauseImage, "pause.tar"},
		{bundle.EchoImage, "echo.tar"},
	} {
		v, _ := in.Cluster.Release().Version(img.component)
		a, err := artifacts(in.Cache, in.platform(host), img.component, v, img.file)
		if err != nil {
			return nil, err
		}
		a[0].Mode = 0o644
		out = append(out, a...)
	}
	extra, err := in.addonImages(host)
	if err != nil {
		return nil, err
	}
	user, err := in.userImages(host)
	return append(append(out, extra...), user...), err
}

// userImages are the spec's image archives for host, uploaded like the
// bundle's (only when the host lacks that digest) to a folder named after
// the digest, and imported by containerd's probe.
func (in Input) userImages(host string) ([]Artifact, error) {
	h, ok := in.Cluster.Host(host)
	if !ok {
		return nil, nil
	}
	var out []Artifact
	for _, img := range in.Cluster.ImagesFor(h) {
		sum, size, err := in.hashFile(img.Archive)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", img.Name, err)
		}
		out = append(out, Artifact{Component: "image", Version: sum[:16], Name: img.Name, Local: img.Archive, SHA256: sum, Size: size,
			Dest: path.Join(PkgRoot, "images", img.Name, sum[:16], "image.tar"), Mode: 0o644})
	}
	return out, nil
}

// hashFile digests a workstation file, through Sums when set: every host
// that gets an archive would otherwise read it again, on every plan.
func (in Input) hashFile(p string) (string, int64, error) {
	if in.Sums != nil {
		return in.Sums.Sum(p)
	}
	return bundle.HashFile(p)
}

// containerd renders containerd with runc from the bundle: the CRI plugin
// with the bundled pause image as sandbox, the CNI folders the cni
// component fills, the cgroup driver the kubelet uses, and OOM score
// adjustments restricted where the host cannot lower them. Its health
// probe (`clusterctl agent containerd-images`) imports the bundled images
// through the containerd client and passes once they are all there.
func containerd(in Input, h spec.Host) (Desired, error) {
	f, err := in.facts(h.Name)
	if err != nil {
		return Desired{}, err
	}
	version := in.version(bundle.Containerd)
	p := in.platform(h.Name)
	arts, err := artifacts(in.Cache, p, bundle.Containerd, version, "containerd", "containerd-shim-runc-v2", "ctr")
	if err != nil {
		return Desired{}, err
	}
	runcVersion, _ := in.Cluster.Release().Version(bundle.Runc)
	runc, err := artifacts(in.Cache, p, bundle.Runc, runcVersion, "runc")
	if err != nil {
		return Desired{}, err
	}
	images, err := in.bundledImages(h.Name)
	if err != nil {
		return Desired{}, err
	}
	pauseVersion, _ := in.Cluster.Release().Version(bundle.PauseImage)
	registriesDir, registryFiles := registryConfig(in.Cluster.Registries())
	cfg := containerdConfig{
		Host: h.Name, Root: ContainerdRoot, State: ContainerdState, Socket: ContainerdSocket,
		SandboxImage:        bundle.PauseImageRepo + ":" + pauseVersion,
		ShimPath:            arts[1].Dest,
		RuncPath:            runc[0].Dest,
		SystemdCgroup:       systemdCgroups(f),
		RestrictOOMScoreAdj: !f.HasCap(provision.CapSysResource),
		CNIBinDir:           CNIBinDir,
		CNIConfDir:          CNIConfDir,
		RegistriesDir:       registriesDir,
	}
	toml, err := templates.Render(templates.ContainerdConfig, cfg)
	if err != nil {
		return Desired{}, fmt.Errorf("containerd on %s: %w", h.Name, err)
	}
	probe := []string{AgentBinary, "agent", "containerd-images", "--socket=" + ContainerdSocket}
	// images.json lists what the probe imports, so that a plan shows which
	// archive came, went or changed (images.json:app.sha256 = ...), and the
	// host says what clusterctl put in its containerd.
	list := map[string]map[string]string{}
	for _, img := range images {
		probe = append(probe, "--archive="+img.Dest+"="+img.SHA256)
		key := img.Component
		if img.Component == "image" {
			key = "image " + img.Name
		}
		list[key] = map[string]string{"file": img.Dest, "sha256": img.SHA256}
	}
	imagesJSON, err := json.MarshalIndent(map[string]any{"archives": list}, "", "  ")
	if err != nil {
		return Desired{}, err
	}
	unit := agent.Unit{
		Name: bundle.Containerd, Version: version,
		Exec: arts[0].Dest,
		Args: mergeArgs(map[string]string{"config": "config.toml"}, in.extraArgs(bundle.Containerd)),
		// ctr and the shim find runc and each other on PATH.
		Env: map[string]string{"PATH": path.Dir(arts[0].Dest) + ":" + path.Dir(runc[0].Dest) + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Health: agent.Health{
			Type: agent.HealthExec, Command: probe,
			Interval: agent.Duration(2 * time.Second),
			// The first probe imports the images.
			Timeout: agent.Duration(60 * time.Second),
		},
		// Containers live in the shims, which containerd starts in their own
		// process groups: stopping containerd leaves pods running.
		StopTimeout: agent.Duration(30 * time.Second),
		Limits:      agent.Limits{NOFILE: 1048576},
	}
	if f.HasCap(provision.CapSysResource) {
		unit.OOMScoreAdj = ptr(-999)
	}
	return Desired{
		Component: bundle.Containerd, Host: h.Name, Address: advertiseAddress(h), Version: version,
		Artifacts: append(append(arts, runc...), images...),
		Config:    []File{{Path: "config.toml", Data: toml, Mode: 0o644}, {Path: "images.json", Data: append(imagesJSON, '\n'), Mode: 0o644}},
		Shared:    registryFiles,
		Dirs:      []Dir{{Path: ContainerdRoot, Mode: 0o711}, {Path: registriesDir, Mode: 0o755}},
		Unit:      unit,
	}, nil
}

func ptr[T any](v T) *T { return &v }
