package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/provision"
)

type floorResult struct {
	copy   time.Duration // tar over ssh of every file the script needs
	probes marks         // since the start script began
}

// unit is the part of the agent's unit.json the floor script uses.
type unit struct {
	Name string            `json:"name"`
	Exec string            `json:"exec"`
	Args []string          `json:"args"`
	Env  map[string]string `json:"env"`
	Dir  string            `json:"dir"`
}

// The floor's files, as paths on the host: what the tar stream carries.
var floorTrees = []string{"opt/clusterctl/pkg", "etc/kubernetes", "etc/clusterctl"}

// harvest copies from a host the tool set up what the floor script needs,
// at the same paths: the control plane's binaries, /etc/kubernetes (PKI and
// kubeconfigs) and each component's config folder with its unit.json; and,
// for the workstation, the admin credentials. Every lab of the benchmark
// uses the same subnet, so the one host has the same name and address and
// the certificates fit.
func (b *bench) harvest(h *labHost, kubeconfig string) error {
	var size int64
	for _, c := range controlPlane {
		cur := filepath.Join("etc", "clusterctl", c, "current")
		n, err := copyTree(filepath.Join(h.fs, cur), filepath.Join(b.stage, cur))
		if err != nil {
			return err
		}
		size += n
		u, err := readUnit(filepath.Join(b.stage, cur, "unit.json"))
		if err != nil {
			return err
		}
		if !strings.HasPrefix(u.Exec, "/opt/clusterctl/pkg/") {
			return fmt.Errorf("%s: exec %s is outside /opt/clusterctl/pkg", c, u.Exec)
		}
		if n, err = copyFile(filepath.Join(h.fs, u.Exec), filepath.Join(b.stage, u.Exec)); err != nil {
			return err
		}
		size += n
	}
	n, err := copyTree(filepath.Join(h.fs, "etc", "kubernetes"), filepath.Join(b.stage, "etc", "kubernetes"))
	if err != nil {
		return err
	}
	size += n
	b.floorMB = float64(size) / 1e6

	client := filepath.Join(b.work, "floor-client")
	for _, f := range []string{"ca.crt", "admin-client.crt", "admin-client.key"} {
		if _, err := copyFile(filepath.Join(h.dir, ".clusterctl", "pki", f), filepath.Join(client, f)); err != nil {
			return err
		}
	}
	_, err = copyFile(kubeconfig, filepath.Join(client, "admin.conf"))
	return err
}

func readUnit(file string) (unit, error) {
	var u unit
	raw, err := os.ReadFile(file)
	if err != nil {
		return u, err
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, fmt.Errorf("%s: %w", file, err)
	}
	if u.Exec == "" {
		return u, fmt.Errorf("%s: no exec", file)
	}
	return u, nil
}

// floorRound copies the harvested files to a fresh lab host, then starts
// the control plane with a plain script and times it with the tool's probes.
func (b *bench) floorRound(ctx context.Context, round int) (res floorResult, err error) {
	script, err := b.floorScript()
	if err != nil {
		return res, err
	}
	dir := filepath.Join(b.work, fmt.Sprintf("floor-%d", round))
	h, err := b.labUp(ctx, dir)
	if err != nil {
		return res, err
	}
	defer func() {
		if derr := b.labDown(ctx, dir); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	client := filepath.Join(b.work, "floor-client")
	p := newProbes(h, client)

	start := time.Now()
	if err := copyOver(ctx, h, b.stage); err != nil {
		return res, err
	}
	res.copy = time.Since(start)

	start = time.Now()
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	if out, err := h.ssh(sctx, script).CombinedOutput(); err != nil {
		return res, fmt.Errorf("start script: %w\n%s", err, out)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	m, err := p.watch(wctx, start)
	if err != nil {
		return res, fmt.Errorf("floor control plane not ready (%s): %w\n%s", m, err, floorLogs(h))
	}
	res.probes = m
	return res, b.kubectlReadyz(ctx, filepath.Join(client, "admin.conf"))
}

// floorLogs is the end of each component's log on the floor host, read
// before the lab goes.
func floorLogs(h *labHost) string {
	var sb strings.Builder
	for _, c := range controlPlane {
		file := filepath.Join(h.fs, "var", "log", "floor", c+".log")
		b, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(&sb, "%s: %v\n", c, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		fmt.Fprintf(&sb, "--- %s\n%s\n", file, strings.Join(lines[max(0, len(lines)-5):], "\n"))
	}
	return sb.String()
}

// copyOver streams the floor's files to the host: tar | ssh tar.
func copyOver(ctx context.Context, h *labHost, stage string) error {
	pack := exec.CommandContext(ctx, "tar", append([]string{"-C", stage, "-cf", "-"}, floorTrees...)...)
	unpack := h.ssh(ctx, "tar -C / -xf -")
	pipe, err := pack.StdoutPipe()
	if err != nil {
		return err
	}
	unpack.Stdin = pipe
	var packErr, unpackErr strings.Builder
	pack.Stderr, unpack.Stderr = &packErr, &unpackErr
	if err := pack.Start(); err != nil {
		return err
	}
	if err := unpack.Run(); err != nil {
		pack.Process.Kill()
		pack.Wait()
		return fmt.Errorf("ssh tar -x: %w: %s", err, unpackErr.String())
	}
	if err := pack.Wait(); err != nil {
		return fmt.Errorf("tar -c: %w: %s", err, packErr.String())
	}
	return nil
}

// floorScript starts the control plane as a sysadmin would by hand: every
// component at once in the background, with the flags, environment and
// working folder of the tool's units. kube-apiserver retries etcd until it
// answers; the controller-manager and scheduler retry the API server.
func (b *bench) floorScript() (string, error) {
	var sb strings.Builder
	sb.WriteString("set -e\nmkdir -p /var/lib/etcd /var/log/clusterctl /var/log/floor\nchmod 0700 /var/lib/etcd\n")
	for _, c := range controlPlane {
		cur := path.Join("/etc/clusterctl", c, "current")
		u, err := readUnit(filepath.Join(b.stage, cur, "unit.json"))
		if err != nil {
			return "", err
		}
		dir := u.Dir
		if dir == "" {
			dir = cur // the agent's default: the generation folder
		}
		// The subshell execs the component, so nothing else holds the
		// ssh session's output open and ssh returns at once.
		fmt.Fprintf(&sb, "(cd %s && exec nohup", provision.Quote(dir))
		if len(u.Env) > 0 {
			sb.WriteString(" env")
			for _, k := range slices.Sorted(maps.Keys(u.Env)) {
				sb.WriteString(" " + provision.Quote(k+"="+u.Env[k]))
			}
		}
		sb.WriteString(" " + provision.Quote(u.Exec))
		for _, a := range u.Args {
			sb.WriteString(" " + provision.Quote(a))
		}
		fmt.Fprintf(&sb, ") >/var/log/floor/%s.log 2>&1 </dev/null &\n", c)
	}
	return sb.String(), nil
}

// copyTree copies the regular files and folders under src (following a
// symbolic link at src itself) to dst and returns the bytes copied.
func copyTree(src, dst string) (int64, error) {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return 0, err
	}
	var total int64
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.MkdirAll(to, info.Mode().Perm())
		case d.Type().IsRegular():
			n, err := copyFile(p, to)
			total += n
			return err
		default:
			return fmt.Errorf("%s: not a file or folder", p)
		}
	})
	return total, err
}

// copyFile copies src to dst with its permissions, making dst's folders.
func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}
