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
//     benchmark probes kube-apiserver's /readyz and the controller-manager's
//     and scheduler's leader leases from the workstation, and their /healthz
//     inside the host, and timestamps every line the apply prints. Then a
//     second apply, which must change nothing, is timed.
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
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/bench/internal/benchkit"
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
	b := &bench{subnet: subnet, work: work, stage: filepath.Join(work, "floor-stage"), kubectl: benchkit.Kubectl("1.37.2")}
	if _, err := os.Stat(b.kubectl); err != nil {
		return fmt.Errorf("kubectl from the bundle: %w (run `make bundle`)", err)
	}
	if b.bin, err = benchkit.Clusterctl(ctx, work, binary); err != nil {
		return err
	}

	fmt.Printf("1-host control plane (kubernetes 1.37.2) on lab hosts in %s, %d rounds each, tool and floor alternating\n", subnet, rounds)
	fmt.Println("tool: clusterctl apply (it also installs containerd, cni, kubelet and kube-proxy on the host: the spec cannot leave them off)")
	fmt.Println("floor: tar|ssh of the same binaries, certificates and configs, then one ssh command starts etcd, kube-apiserver,")
	fmt.Println("       controller-manager and scheduler with nohup and the tool's flags")
	fmt.Println("probes every 100ms: apiserver /readyz and the leader leases from the workstation, /healthz of controller-manager (kcm)")
	fmt.Println("and scheduler inside the host; \"ready\" = /readyz ok and both leases held")
	var tools []toolResult
	var floors []floorResult
	for r := 1; r <= rounds; r++ {
		t, err := b.toolRound(ctx, r)
		if err != nil {
			return fmt.Errorf("tool round %d: %w", r, err)
		}
		tools = append(tools, t)
		fmt.Printf("\ntool  %d: %s; control-plane steps done %s, whole apply %s; no-change re-apply %s\n",
			r, t.probes, benchkit.Secs(t.stepsDone), benchkit.Secs(t.apply), benchkit.Secs(t.reapply))
		t.timeline.print(os.Stdout)

		f, err := b.floorRound(ctx, r)
		if err != nil {
			return fmt.Errorf("floor round %d: %w", r, err)
		}
		floors = append(floors, f)
		fmt.Printf("floor %d: copy %s, then %s\n", r, benchkit.Secs(f.copy), f.probes)
	}
	summary(tools, floors, b.floorMB)
	return nil
}

func summary(tools []toolResult, floors []floorResult, floorMB float64) {
	type row struct {
		name string
		v    []time.Duration
	}
	col := func(name string, n int, f func(int) time.Duration) row {
		r := row{name: name, v: make([]time.Duration, n)}
		for i := range r.v {
			r.v[i] = f(i)
		}
		return r
	}
	nt, nf := len(tools), len(floors)
	rows := []row{
		col("tool: apiserver /readyz ok", nt, func(i int) time.Duration { return tools[i].probes.readyz }),
		col("tool: control plane ready", nt, func(i int) time.Duration { return tools[i].probes.ready() }),
		col("tool: control-plane steps done (apply output)", nt, func(i int) time.Duration { return tools[i].stepsDone }),
		col("tool: whole apply (+ containerd, cni, kubelet, kube-proxy)", nt, func(i int) time.Duration { return tools[i].apply }),
		col("tool: no-change re-apply", nt, func(i int) time.Duration { return tools[i].reapply }),
		col(fmt.Sprintf("floor: copy (tar over ssh, %.0f MB)", floorMB), nf, func(i int) time.Duration { return floors[i].copy }),
		col("floor: apiserver /readyz ok, with copy", nf, func(i int) time.Duration { return floors[i].copy + floors[i].probes.readyz }),
		col("floor: apiserver /readyz ok, files in place", nf, func(i int) time.Duration { return floors[i].probes.readyz }),
		col("floor: control plane ready, with copy", nf, func(i int) time.Duration { return floors[i].copy + floors[i].probes.ready() }),
		col("floor: control plane ready, files in place", nf, func(i int) time.Duration { return floors[i].probes.ready() }),
	}
	fmt.Printf("\n%-60s %8s %8s\n", "", "min", "median")
	for _, r := range rows {
		fmt.Printf("%-60s %8s %8s\n", r.name, benchkit.Secs(slices.Min(r.v)), benchkit.Secs(benchkit.Median(r.v)))
	}
	ratio := func(a, b int) string {
		return fmt.Sprintf("%.1f", benchkit.Median(rows[a].v).Seconds()/benchkit.Median(rows[b].v).Seconds())
	}
	fmt.Println("\nratios tool/floor (medians):")
	fmt.Printf("  apiserver /readyz ok:     %s vs the floor with copy, %s vs files in place\n", ratio(0, 6), ratio(0, 7))
	fmt.Printf("  control plane ready:      %s vs the floor with copy, %s vs files in place\n", ratio(1, 8), ratio(1, 9))
	fmt.Printf("  control-plane steps done: %s vs the floor ready with copy\n", ratio(2, 8))
}
