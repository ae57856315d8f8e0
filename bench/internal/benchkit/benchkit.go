// Package benchkit holds what the benchmarks under bench/ share: the
// clusterctl binary to measure, the bundled kubectl, and medians.
package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ModuleRoot is the repository the benchmark is run from (go env GOMOD).
func ModuleRoot(ctx context.Context) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	p := strings.TrimSpace(string(gomod))
	if err != nil || p == "" || p == os.DevNull {
		return "", fmt.Errorf("run from the repository, or pass -clusterctl (go env GOMOD: %v)", err)
	}
	return filepath.Dir(p), nil
}

// Clusterctl returns the binary to measure: given, or ./cmd/clusterctl of
// this module built into work.
func Clusterctl(ctx context.Context, work, given string) (string, error) {
	if given != "" {
		return filepath.Abs(given)
	}
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(work, "clusterctl")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/clusterctl")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build clusterctl: %w\n%s", err, out)
	}
	return bin, nil
}

// Kubectl is the bundle's kubectl of a Kubernetes version.
func Kubectl(version string) string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "clusterctl", "artifacts", "kubectl", version, "linux-amd64", "kubectl")
}

// Median of v (the mean of the middle two for an even count).
func Median[T ~int64 | ~float64](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Secs renders a duration in seconds with one decimal ("-" for none).
func Secs(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
