// Command control-plane measures how long clusterctl takes to bring up a
// one-host control plane, against the floor: the same binaries, certificates
// and flags started by a plain script on the same kind of lab host. As root,
// from the repository root:
//
//	go run ./bench/control-plane [-rounds 3] [-subnet 10.241.0.0/24]
//
// Rounds alternate, each on a fresh lab host (tool, floor, tool, floor, ...):
//
//   - tool: `clusterctl apply -auto-approve` of a one-host cluster (the spec
//     cannot leave the node components off a host, so the apply also installs
//     containerd, cni, kubelet and kube-proxy there). While it runs, the
//     benchmark probes kube-apiserver's /readyz from the workstation and the
//     controller-manager's and scheduler's /healthz inside the host, and
//     timestamps every line the apply prints. Then a second apply, which must
//     change nothing, is timed.
//   - floor: tar over ssh copies the binaries, the certificates and
//     kubeconfigs and the apiserver's audit policy that the first tool round
//     installed; then one ssh command starts etcd, kube-apiserver,
//     kube-controller-manager and kube-scheduler with nohup, all at once and
//     with the flags of the tool's unit.json files. The same probes time it.
//
// It prints each round, the agent's per-component timeline of each tool
// round, the minimum and median of every figure and the ratios tool/floor.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds of each side, alternating tool and floor")
	subnet := flag.String("subnet", "10.241.0.0/24", "subnet of the benchmark's lab hosts (one at a time)")
	binary := flag.String("clusterctl", "", "clusterctl binary to measure (default: build ./cmd/clusterctl of this module)")
	keep := flag.Bool("keep", false, "keep the work folder (apply logs, harvested files) and print its path")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *rounds, *subnet, *binary, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/control-plane:", err)
		os.Exit(1)
	}
}

// bench is what every round shares.
type bench struct {
	bin     string // clusterctl
	kubectl string
	subnet  string
	work    string
	stage   string // the floor's files, harvested from the first tool round
	floorMB float64
}

func run(ctx context.Context, rounds int, subnet, binary string, keep bool) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (it makes lab hosts)")
	}
	if rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	if _, err := netip.ParsePrefix(subnet); err != nil {
		return fmt.Errorf("-subnet: %w", err)
	}
	work, err := os.MkdirTemp("", "bench-control-plane-")
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			fmt.Println("work folder:", work)
		} else {
			os.RemoveAll(work)
		}
	}()
	b := &bench{subnet: subnet, work: work, stage: filepath.Join(work, "floor-stage"), kubectl: kubectlPath()}
	if _, err := os.Stat(b.kubectl); err != nil {
		return fmt.Errorf("kubectl from the bundle: %w (run `make bundle`)", err)
	}
	if b.bin, err = clusterctl(ctx, work, binary); err != nil {
		return err
	}

	fmt.Printf("1-host control plane (kubernetes 1.37.2) on lab hosts in %s, %d rounds each, tool and floor alternating\n", subnet, rounds)
	fmt.Println("tool: clusterctl apply (it also installs containerd, cni, kubelet and kube-proxy on the host: the spec has no way to leave them off)")
	fmt.Println("floor: tar|ssh of the same binaries, certificates and configs, then one ssh command starts etcd, kube-apiserver, controller-manager, scheduler with nohup")
	fmt.Println("probes every 100ms: apiserver /readyz from the workstation, controller-manager and scheduler /healthz inside the host")
	var tools []toolResult
	var floors []floorResult
	for r := 1; r <= rounds; r++ {
		t, err := b.toolRound(ctx, r)
		if err != nil {
			return fmt.Errorf("tool round %d: %w", r, err)
		}
		tools = append(tools, t)
		fmt.Printf("tool  %d: first ok: apiserver /readyz %s, controller-manager %s, scheduler %s; control-plane steps done %s, whole apply %s; no-change re-apply %s\n",
			r, secs(t.probes.readyz), secs(t.probes.kcm), secs(t.probes.sched), secs(t.stepsDone), secs(t.apply), secs(t.reapply))
		t.timeline.print(os.Stdout)

		f, err := b.floorRound(ctx, r)
		if err != nil {
			return fmt.Errorf("floor round %d: %w", r, err)
		}
		floors = append(floors, f)
		fmt.Printf("floor %d: copy %s, then first ok: apiserver /readyz %s, controller-manager %s, scheduler %s (after the copy)\n",
			r, secs(f.copy), secs(f.probes.readyz), secs(f.probes.kcm), secs(f.probes.sched))
	}
	summary(tools, floors, b.floorMB)
	return nil
}

// clusterctl returns the binary to measure, building it when none is given.
func clusterctl(ctx context.Context, work, given string) (string, error) {
	if given != "" {
		return filepath.Abs(given)
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", fmt.Errorf("find the module to build clusterctl from (run from the repository, or pass -clusterctl): %v", err)
	}
	bin := filepath.Join(work, "clusterctl")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/clusterctl")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build clusterctl: %w\n%s", err, out)
	}
	return bin, nil
}

func kubectlPath() string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "clusterctl", "artifacts", "kubectl", "1.37.2", "linux-amd64", "kubectl")
}

func summary(tools []toolResult, floors []floorResult, floorMB float64) {
	pick := func(n int, f func(int) time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	n := len(tools)
	rows := []struct {
		name string
		v    []time.Duration
	}{
		{"tool: apiserver /readyz ok", pick(n, func(i int) time.Duration { return tools[i].readyz })},
		{"tool: control plane healthy (probes)", pick(n, func(i int) time.Duration { return tools[i].healthy })},
		{"tool: control-plane steps done (apply output)", pick(n, func(i int) time.Duration { return tools[i].stepsDone })},
		{"tool: whole apply (+ containerd, cni, kubelet, kube-proxy)", pick(n, func(i int) time.Duration { return tools[i].apply })},
		{"tool: no-change re-apply", pick(n, func(i int) time.Duration { return tools[i].reapply })},
		{fmt.Sprintf("floor: copy (tar over ssh, %.0f MB)", floorMB), pick(n, func(i int) time.Duration { return floors[i].copy })},
		{"floor: apiserver /readyz ok, with copy", pick(n, func(i int) time.Duration { return floors[i].copy + floors[i].readyz })},
		{"floor: apiserver /readyz ok, files in place", pick(n, func(i int) time.Duration { return floors[i].readyz })},
		{"floor: control plane healthy, with copy", pick(n, func(i int) time.Duration { return floors[i].copy + floors[i].healthy })},
		{"floor: control plane healthy, files in place", pick(n, func(i int) time.Duration { return floors[i].healthy })},
	}
	fmt.Printf("\n%-60s %8s %8s\n", "", "min", "median")
	med := map[string]time.Duration{}
	for _, r := range rows {
		med[r.name] = median(r.v)
		fmt.Printf("%-60s %8s %8s\n", r.name, secs(slices.Min(r.v)), secs(med[r.name]))
	}
	ratio := func(a, b string) string { return fmt.Sprintf("%.1f", med[a].Seconds()/med[b].Seconds()) }
	fmt.Println("\nratios tool/floor (medians):")
	fmt.Printf("  apiserver ready:       %s vs the floor with copy, %s vs files in place\n",
		ratio(rows[0].name, rows[6].name), ratio(rows[0].name, rows[7].name))
	fmt.Printf("  control plane healthy: %s vs the floor with copy, %s vs files in place\n",
		ratio(rows[1].name, rows[8].name), ratio(rows[1].name, rows[9].name))
	fmt.Printf("  control-plane steps done vs floor healthy with copy: %s\n", ratio(rows[2].name, rows[8].name))
}

func median(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func secs(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
