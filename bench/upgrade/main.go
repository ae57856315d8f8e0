// Command upgrade measures a full upgrade of a 3-host lab cluster (1
// control plane, 2 workers) from Kubernetes 1.36.3 / etcd 3.6.16 to 1.37.2
// / etcd 3.7.3 with `clusterctl apply`, against a baseline from the same
// run: a fresh install of 1.37.2 on an identical new lab. As root, from the
// repository root:
//
//	go run ./bench/upgrade [-rounds 1] [-subnet 10.245.0.0/24]
//
// Each round makes a lab, installs 1.36.3 (not timed), times the upgrade,
// and removes the lab; then makes another lab and times the fresh 1.37.2
// install. It prints every apply step's duration of the upgrade, both
// totals, and the ratio upgrade / fresh install.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/bench/internal/benchkit"
)

func main() {
	rounds := flag.Int("rounds", 1, "rounds (each: one upgrade and one fresh install)")
	subnet := flag.String("subnet", "10.245.0.0/24", "subnet of the benchmark's lab hosts")
	binary := flag.String("clusterctl", "", "clusterctl binary (default: build ./cmd/clusterctl)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *rounds, *subnet, *binary); err != nil {
		fmt.Fprintln(os.Stderr, "bench/upgrade:", err)
		os.Exit(1)
	}
}

type bench struct {
	bin, subnet, work string
	cluster           []byte // examples/lab/cluster.hcl
}

func run(ctx context.Context, rounds int, subnet, binary string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (it makes lab hosts)")
	}
	work, err := os.MkdirTemp("", "bench-upgrade-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{bin: binary, subnet: subnet, work: work}
	if b.bin, err = benchkit.Clusterctl(ctx, work, binary); err != nil {
		return err
	}
	if b.cluster, err = os.ReadFile("examples/lab/cluster.hcl"); err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	var upgrades, installs []time.Duration
	for r := 1; r <= rounds; r++ {
		up, steps, err := b.upgradeRound(ctx, r)
		if err != nil {
			return fmt.Errorf("round %d, upgrade: %w", r, err)
		}
		fmt.Printf("round %d: upgrade 1.36.3 -> 1.37.2 took %s\n", r, benchkit.Secs(up))
		for _, s := range steps {
			fmt.Printf("    %-40s %s\n", s.what, benchkit.Secs(s.took))
		}
		in, err := b.installRound(ctx, r)
		if err != nil {
			return fmt.Errorf("round %d, fresh install: %w", r, err)
		}
		fmt.Printf("round %d: fresh install of 1.37.2 took %s\n", r, benchkit.Secs(in))
		upgrades, installs = append(upgrades, up), append(installs, in)
	}
	mu, mi := benchkit.Median(upgrades), benchkit.Median(installs)
	fmt.Printf("\nupgrade of the 3-host lab (1.36.3/etcd 3.6 -> 1.37.2/etcd 3.7): median %s (min %s) over %d rounds\n", benchkit.Secs(mu), benchkit.Secs(slices.Min(upgrades)), rounds)
	fmt.Printf("fresh install of 1.37.2 on the same lab size (baseline):      median %s (min %s)\n", benchkit.Secs(mi), benchkit.Secs(slices.Min(installs)))
	fmt.Printf("ratio upgrade / fresh install: %.2f\n", mu.Seconds()/mi.Seconds())
	return nil
}

type step struct {
	what string
	took time.Duration
}

// stepLine matches the per-host lines apply prints when a change is done.
var stepLine = regexp.MustCompile(`^\s+(\S+): (\S+) (\S+) done in (\S+)$`)

func (b *bench) upgradeRound(ctx context.Context, r int) (time.Duration, []step, error) {
	dir := filepath.Join(b.work, fmt.Sprintf("upgrade-%d", r))
	if err := b.labUp(ctx, dir); err != nil {
		return 0, nil, err
	}
	defer b.labDown(dir)
	if _, err := b.apply(ctx, dir, "1.36.3"); err != nil {
		return 0, nil, err
	}
	start := time.Now()
	lines, err := b.apply(ctx, dir, "1.37.2")
	took := time.Since(start)
	if err != nil {
		return 0, nil, err
	}
	var steps []step
	for _, l := range lines {
		if m := stepLine.FindStringSubmatch(l); m != nil {
			d, err := time.ParseDuration(m[4])
			if err == nil {
				steps = append(steps, step{what: m[2] + " on " + m[1], took: d})
			}
		}
	}
	return took, steps, nil
}

func (b *bench) installRound(ctx context.Context, r int) (time.Duration, error) {
	dir := filepath.Join(b.work, fmt.Sprintf("install-%d", r))
	if err := b.labUp(ctx, dir); err != nil {
		return 0, err
	}
	defer b.labDown(dir)
	start := time.Now()
	if _, err := b.apply(ctx, dir, "1.37.2"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (b *bench) labUp(ctx context.Context, dir string) error {
	out, err := exec.CommandContext(ctx, b.bin, "lab", "up", "--dir", dir, "--subnet", b.subnet,
		"--control-planes", "1", "--workers", "2").CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab up: %v\n%s", err, out)
	}
	return os.WriteFile(filepath.Join(dir, "cluster.hcl"), b.cluster, 0o644)
}

func (b *bench) labDown(dir string) {
	if out, err := exec.Command(b.bin, "lab", "down", "--dir", dir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "lab down %s: %v\n%s", dir, err, out)
	}
}

// apply runs one apply and returns its output lines.
func (b *bench) apply(ctx context.Context, dir, version string) ([]string, error) {
	cmd := exec.CommandContext(ctx, b.bin, "-chdir="+dir, "apply", "-auto-approve", "-var", "kubernetes_version="+version)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		n := max(0, len(lines)-30)
		return lines, fmt.Errorf("apply %s: %v\n%s", version, err, joinLines(lines[n:]))
	}
	return lines, nil
}

func joinLines(ls []string) string {
	out := ""
	for _, l := range ls {
		out += l + "\n"
	}
	return out
}
