// Command cluster-up measures how long clusterctl takes to bring a 3-host
// lab (1 control plane + 2 workers, examples/lab/cluster.hcl) from nothing
// to every node Ready, against the floor: the same binaries, certificates,
// configs and flags copied and started by a plain script. As root, from the
// repository root:
//
//	go run ./bench/cluster-up [-rounds 1] [-subnet 10.243.0.0/24]
//
// Each round makes a fresh lab for each side, on the same subnet (so the
// addresses in the certificates match), one after the other:
//
//   - tool: `clusterctl apply -auto-approve`. Done when apply returns (its
//     gates wait for each node to be Ready and each kube-proxy healthy);
//     the benchmark then checks both itself.
//   - floor: for every host at once, one `tar | ssh host 'tar x && sh
//     start.sh'` copies what the tool's first round installed (binaries,
//     image archives, certificates, kubeconfigs, the generation folders
//     with configs) and starts every component with nohup, with the flags
//     and environment of the tool's unit.json files: the control plane, then
//     containerd, the pod-network keeper, the kubelet (once containerd's
//     socket exists) and kube-proxy, and imports the bundled images with the
//     bundled ctr. Done when every node is Ready and every kube-proxy's
//     /healthz answers 200, polled every 100 ms from the workstation.
//
// It prints both times and the ratio tool/floor.
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

	"github.com/clusterctl/clusterctl/bench/internal/benchkit"
)

func main() {
	rounds := flag.Int("rounds", 1, "rounds of each side (tool then floor)")
	subnet := flag.String("subnet", "10.243.0.0/24", "subnet of the benchmark's lab (one lab at a time)")
	binary := flag.String("clusterctl", "", "clusterctl binary to measure (default: build ./cmd/clusterctl of this module)")
	keep := flag.Bool("keep", false, "keep the work folder (apply logs, the floor's files and scripts) and print its path")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *rounds, *subnet, *binary, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/cluster-up:", err)
		os.Exit(1)
	}
}

// bench is what the rounds share.
type bench struct {
	bin     string // clusterctl
	root    string // the repository (examples/lab/cluster.hcl)
	subnet  string
	work    string
	stage   string // the floor's files, harvested from the first tool round
	floorMB float64
	// cgroupRoots are the kubelet cgroup roots the staged configs name.
	cgroupRoots map[string]string
}

func run(ctx context.Context, rounds int, subnet, binary string, keep bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (it makes lab hosts)")
	}
	if rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	if _, err := netip.ParsePrefix(subnet); err != nil {
		return fmt.Errorf("-subnet: %w", err)
	}
	work, err := os.MkdirTemp("", "bench-cluster-up-")
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
	b := &bench{subnet: subnet, work: work, stage: filepath.Join(work, "floor-stage")}
	if b.root, err = benchkit.ModuleRoot(ctx); err != nil {
		return err
	}
	if b.bin, err = benchkit.Clusterctl(ctx, work, binary); err != nil {
		return err
	}
	fmt.Printf("3-host lab (1 control plane + 2 workers, kubernetes 1.37.2) in %s: from nothing to every node Ready, %d round(s)\n", subnet, rounds)
	var tools, floors []time.Duration
	for r := 1; r <= rounds; r++ {
		tool, err := b.toolRound(ctx, r)
		if err != nil {
			return fmt.Errorf("tool round %d: %w", r, err)
		}
		tools = append(tools, tool)
		fmt.Printf("tool  %d: %s (clusterctl apply -auto-approve; every node Ready, every kube-proxy healthy)\n", r, benchkit.Secs(tool))
		floor, err := b.floorRound(ctx, r)
		if err != nil {
			return fmt.Errorf("floor round %d: %w", r, err)
		}
		floors = append(floors, floor.total)
		fmt.Printf("floor %d: %s (copy and start %.0f MB over ssh to 3 hosts in parallel: %s; then every node Ready and every kube-proxy healthy)\n",
			r, benchkit.Secs(floor.total), b.floorMB, benchkit.Secs(floor.started))
	}
	t, f := benchkit.Median(tools), benchkit.Median(floors)
	fmt.Printf("\n%-34s %8s %8s\n", "", "min", "median")
	fmt.Printf("%-34s %8s %8s\n", "tool: nothing to all nodes Ready", benchkit.Secs(slices.Min(tools)), benchkit.Secs(t))
	fmt.Printf("%-34s %8s %8s\n", "floor: nothing to all nodes Ready", benchkit.Secs(slices.Min(floors)), benchkit.Secs(f))
	fmt.Printf("ratio tool/floor (medians): %.2f   (target: <= 1.5, and the tool <= 45s)\n", t.Seconds()/f.Seconds())
	return nil
}

// toolRound times `clusterctl apply` on a fresh lab; the first round's
// installed files become the floor's.
func (b *bench) toolRound(ctx context.Context, r int) (time.Duration, error) {
	dir := filepath.Join(b.work, fmt.Sprintf("tool-%d", r))
	l, err := b.labUp(ctx, dir)
	if err != nil {
		return 0, err
	}
	defer b.labDown(ctx, dir)
	spec, err := os.ReadFile(filepath.Join(b.root, "examples", "lab", "cluster.hcl"))
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.hcl"), spec, 0o644); err != nil {
		return 0, err
	}
	logPath := filepath.Join(b.work, fmt.Sprintf("tool-%d-apply.log", r))
	logf, err := os.Create(logPath)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, b.bin, "-chdir="+dir, "apply", "-auto-approve")
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err != nil {
		tail, _ := os.ReadFile(logPath)
		return 0, fmt.Errorf("apply: %w\n%s", err, lastLines(string(tail), 30))
	}
	// Apply's gates said so; check it independently.
	ready, err := newReadiness(l)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := ready.wait(cctx, time.Now()); err != nil {
		return 0, fmt.Errorf("apply returned but the cluster is not up: %w", err)
	}
	if b.floorMB == 0 {
		mb, err := b.harvest(l)
		if err != nil {
			return 0, fmt.Errorf("collect the floor's files: %w", err)
		}
		b.floorMB = mb
	}
	return took, nil
}

type floorResult struct {
	started time.Duration // every host's copy-and-start script returned
	total   time.Duration // every node Ready and every kube-proxy healthy
}

// floorRound copies and starts the harvested files on a fresh lab with a
// plain script per host, all hosts at once.
func (b *bench) floorRound(ctx context.Context, r int) (floorResult, error) {
	dir := filepath.Join(b.work, fmt.Sprintf("floor-%d", r))
	l, err := b.labUp(ctx, dir)
	if err != nil {
		return floorResult{}, err
	}
	defer b.labDown(ctx, dir)
	if err := b.retarget(l); err != nil {
		return floorResult{}, err
	}
	ready, err := newReadiness(l)
	if err != nil {
		return floorResult{}, err
	}
	start := time.Now()
	errs := make(chan error, len(l.hosts))
	for _, h := range l.hosts {
		go func() { errs <- b.copyAndStart(ctx, l, h) }()
	}
	var all []error
	for range l.hosts {
		all = append(all, <-errs)
	}
	if err := errors.Join(all...); err != nil {
		return floorResult{}, err
	}
	res := floorResult{started: time.Since(start)}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if res.total, err = ready.wait(wctx, start); err != nil {
		return floorResult{}, fmt.Errorf("floor cluster did not come up: %w (logs: %s/hosts/*/fs/var/log/floor-*.log, kept with -keep)", err, dir)
	}
	return res, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
