package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/components"
)

// startOrder is the order the floor script starts components in: a plain
// script would start the control plane first, then the node.
var startOrder = []string{
	bundle.Etcd, bundle.KubeAPIServer, bundle.KubeControllerManager, bundle.KubeScheduler,
	bundle.Containerd, bundle.CNI, bundle.Kubelet, bundle.KubeProxy,
}

// floorScript is where the start script lands on each host.
const floorScript = "/etc/clusterctl/floor-start.sh"

// harvest copies what the tool installed on each host into the stage:
// /opt/clusterctl (binaries, image archives, the clusterctl binary that is
// the pod-network keeper), /etc/kubernetes (certificates, kubeconfigs) and
// each component's current generation folder, and writes the host's start
// script from the generations' unit.json files. It returns the size in MB.
func (b *bench) harvest(l *benchLab) (float64, error) {
	var total int64
	b.cgroupRoots = map[string]string{}
	for _, h := range l.hosts {
		root, err := labCgroupRoot(h)
		if err != nil {
			return 0, err
		}
		b.cgroupRoots[h.name] = root
		dst := filepath.Join(b.stage, h.name)
		for _, p := range []string{"opt/clusterctl/pkg", "opt/clusterctl/bin", "etc/kubernetes"} {
			n, err := copyTree(filepath.Join(h.fs, p), filepath.Join(dst, p))
			if err != nil {
				return 0, err
			}
			total += n
		}
		var units []unitAt
		for _, comp := range startOrder {
			link := filepath.Join(h.fs, "etc/clusterctl", comp, "current")
			target, err := os.Readlink(link)
			if os.IsNotExist(err) {
				continue // not on this host
			}
			if err != nil {
				return 0, err
			}
			rel := filepath.Join("etc/clusterctl", comp, filepath.Base(target))
			n, err := copyTree(filepath.Join(h.fs, rel), filepath.Join(dst, rel))
			if err != nil {
				return 0, err
			}
			total += n
			raw, err := os.ReadFile(filepath.Join(h.fs, rel, agent.UnitFile))
			if err != nil {
				return 0, err
			}
			u, err := agent.DecodeUnit(filepath.Join(h.name, rel, agent.UnitFile), raw)
			if err != nil {
				return 0, err
			}
			units = append(units, unitAt{u: u, dir: "/" + rel})
		}
		images, err := filepath.Glob(filepath.Join(dst, "opt/clusterctl/pkg/*-image/*/*.tar"))
		if err != nil {
			return 0, err
		}
		for i := range images {
			images[i] = "/" + strings.TrimPrefix(images[i], dst+"/")
		}
		script := startScript(h.name, units, images)
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(floorScript)), 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(dst, floorScript), []byte(script), 0o755); err != nil {
			return 0, err
		}
	}
	return float64(total) / (1 << 20), nil
}

type unitAt struct {
	u   agent.Unit
	dir string // its generation folder on the host
}

// startScript starts every unit in the background, detached from the SSH
// session, with its flags, environment and working folder; the kubelet
// and kube-proxy once containerd's socket exists; and imports the bundled
// images with the bundled ctr.
func startScript(host string, units []unitAt, images []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# The floor for %s: start what clusterctl would, with a plain script.\nset -e\n# As many open files as allowed (the agent does the same).\nulimit -n 1048576 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"\n", host)
	dirs := []string{"/var/lib/kubelet/volumeplugins", components.ContainerdRoot, components.CNIConfDir, components.CNIBinDir, "/var/lib/cni"}
	fmt.Fprintf(&b, "mkdir -p %s\nmkdir -p -m 0700 %s\n", strings.Join(dirs, " "), components.EtcdDataDir)
	ctr := ""
	for _, ua := range units {
		if ua.u.Name == bundle.Kubelet {
			// The kubelet exits when the container runtime does not answer.
			fmt.Fprintf(&b, "i=0; while [ ! -S %s ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n", components.ContainerdSocket)
		}
		dir := ua.u.Dir
		if dir == "" {
			dir = ua.dir
		}
		env := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
		for k, v := range ua.u.Env {
			env[k] = v
		}
		keys := make([]string, 0, len(env))
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var envArgs []string
		for _, k := range keys {
			envArgs = append(envArgs, quote(k+"="+env[k]))
		}
		argv := []string{quote(ua.u.Exec)}
		for _, a := range ua.u.Args {
			argv = append(argv, quote(a))
		}
		fmt.Fprintf(&b, "(cd %s && exec setsid env -i %s %s >>/var/log/floor-%s.log 2>&1 </dev/null &)\n",
			quote(dir), strings.Join(envArgs, " "), strings.Join(argv, " "), ua.u.Name)
		if ua.u.Name == bundle.Containerd {
			ctr = filepath.Join(filepath.Dir(ua.u.Exec), "ctr")
		}
	}
	if ctr != "" && len(images) > 0 {
		slices.Sort(images)
		fmt.Fprintf(&b, "(i=0; while [ ! -S %s ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n", components.ContainerdSocket)
		for _, img := range images {
			fmt.Fprintf(&b, " %s --address %s -n k8s.io images import --local %s\n", quote(ctr), components.ContainerdSocket, quote(img))
		}
		b.WriteString(") >>/var/log/floor-images.log 2>&1 </dev/null &\n")
	}
	return b.String()
}

// labCgroupRoot is the kubelet cgroup root a lab gave a host (its marker).
func labCgroupRoot(h labHost) (string, error) {
	b, err := os.ReadFile(filepath.Join(h.fs, "etc/clusterctl/lab-host.json"))
	if err != nil {
		return "", err
	}
	var m components.LabHost
	if err := json.Unmarshal(b, &m); err != nil || m.CgroupRoot == "" {
		return "", fmt.Errorf("%s: lab marker without cgroup_root: %v", h.name, err)
	}
	return m.CgroupRoot, nil
}

// retarget points the staged kubelet configs at this lab's cgroup roots
// (each lab has its own; the tool would render them so for these hosts).
func (b *bench) retarget(l *benchLab) error {
	for _, h := range l.hosts {
		root, err := labCgroupRoot(h)
		if err != nil {
			return err
		}
		files, err := filepath.Glob(filepath.Join(b.stage, h.name, "etc/clusterctl/kubelet/*/kubelet-config.yaml"))
		if err != nil || len(files) != 1 {
			return fmt.Errorf("%s: staged kubelet config: %v %v", h.name, files, err)
		}
		old := b.cgroupRoots[h.name]
		data, err := os.ReadFile(files[0])
		if err != nil {
			return err
		}
		line := func(r string) string { return "cgroupRoot: \"" + r + "\"" }
		if !strings.Contains(string(data), line(old)) {
			return fmt.Errorf("%s: %s has no %s", h.name, files[0], line(old))
		}
		data = []byte(strings.Replace(string(data), line(old), line(root), 1))
		if err := os.WriteFile(files[0], data, 0o644); err != nil {
			return err
		}
		b.cgroupRoots[h.name] = root
	}
	return nil
}

// copyAndStart streams the host's stage to it with tar over ssh and runs
// its start script, in one command.
func (b *bench) copyAndStart(ctx context.Context, l *benchLab, h labHost) error {
	stage := filepath.Join(b.stage, h.name)
	// Existing folders (/etc is shared by every lab host) keep their
	// owner and mode.
	pack := exec.CommandContext(ctx, "tar", "-C", stage, "-cf", "-", "opt", "etc")
	ssh := l.ssh(ctx, h, "tar -xf - -C / --no-overwrite-dir && sh "+floorScript)
	pipe, err := pack.StdoutPipe()
	if err != nil {
		return err
	}
	ssh.Stdin = pipe
	if err := pack.Start(); err != nil {
		return err
	}
	out, err := ssh.CombinedOutput()
	if werr := pack.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("tar: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("%s: copy and start: %w\n%s", h.name, err, out)
	}
	return nil
}

// copyTree copies a folder (files, symlinks, modes) and returns the bytes
// copied.
func copyTree(src, dst string) (int64, error) {
	var total int64
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, to)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			total += int64(len(data))
			return os.WriteFile(to, data, info.Mode().Perm())
		}
	})
	return total, err
}

// quote quotes s for a POSIX shell.
func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
