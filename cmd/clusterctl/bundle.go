package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/bundle/build"
	"github.com/clusterctl/clusterctl/bundle/fetch"
)

func newBundleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Build, fetch, list and verify the component binaries and images in the local cache",
		Long: `The bundle is every component binary and image clusterctl installs, at the
versions pinned for each supported Kubernetes release. It lives in
${XDG_CACHE_HOME:-~/.cache}/clusterctl/artifacts and is shared by every clone.`,
	}
	cmd.AddCommand(newBundleBuildCmd(), newBundleListCmd(), newBundleVerifyCmd(), newBundleFetchCmd())
	return cmd
}

// selection is the artifact filter shared by build and fetch.
type selection struct {
	kubernetes []string
	only       []string
	platform   string
}

func (s *selection) flags(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&s.kubernetes, "kubernetes-version", nil, "only the artifacts of this Kubernetes `VERSION` (repeatable; default: every supported release)")
	cmd.Flags().StringSliceVar(&s.only, "only", nil, "only this `COMPONENT` (repeatable): kube-apiserver, ..., kubectl, etcd, containerd, runc, cni, pause-image, echo-image, or kubernetes for all six Kubernetes binaries")
	cmd.Flags().StringVar(&s.platform, "platform", "", "target `OS/ARCH` (default: this machine's)")
}

func (s *selection) artifacts() ([]bundle.Artifact, error) {
	var out []bundle.Artifact
	if len(s.kubernetes) == 0 {
		out = bundle.AllArtifacts()
	} else {
		seen := map[string]bool{}
		for _, v := range s.kubernetes {
			r, err := bundle.ReleaseFor(v)
			if err != nil {
				return nil, err
			}
			for _, a := range r.Artifacts() {
				if k := a.Component + "@" + a.Version; !seen[k] {
					seen[k] = true
					out = append(out, a)
				}
			}
		}
	}
	if len(s.only) == 0 {
		return out, nil
	}
	known := map[string]bool{"kubernetes": true}
	for _, a := range bundle.AllArtifacts() {
		known[a.Component] = true
	}
	want := map[string]bool{}
	for _, c := range s.only {
		if !known[c] {
			return nil, fmt.Errorf("--only %s: unknown component", c)
		}
		if c == "kubernetes" {
			for _, b := range bundle.KubernetesBinaries() {
				want[b] = true
			}
			continue
		}
		want[c] = true
	}
	var filtered []bundle.Artifact
	for _, a := range out {
		if want[a.Component] {
			filtered = append(filtered, a)
		}
	}
	return filtered, nil
}

func (s *selection) target() (bundle.Platform, error) {
	if s.platform == "" {
		return bundle.HostPlatform(), nil
	}
	return bundle.ParsePlatform(s.platform)
}

func newBundleBuildCmd() *cobra.Command {
	var sel selection
	var force bool
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build every pinned artifact from upstream sources into the cache (reusing what is there)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			arts, err := sel.artifacts()
			if err != nil {
				return err
			}
			p, err := sel.target()
			if err != nil {
				return err
			}
			cache, err := bundle.DefaultCache()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			b := &build.Builder{Cache: cache, WorkRoot: filepath.Join(filepath.Dir(cache.Root), "build"), Platform: p, Out: out, Force: force}
			unlock, err := b.Lock()
			if err != nil {
				return err
			}
			defer unlock()
			fmt.Fprintf(out, "bundle: %d artifacts for %s in %s\n", len(arts), p, cache.Root)
			start := time.Now()
			var built, reused []string
			var size int64
			var errs []error
			for _, a := range arts {
				r, err := b.Ensure(cmd.Context(), a)
				if err != nil {
					errs = append(errs, err)
					if cmd.Context().Err() != nil {
						break
					}
					continue
				}
				size += r.Manifest.Size()
				if r.Reused {
					reused = append(reused, a.ID())
				} else {
					built = append(built, a.ID())
				}
			}
			fmt.Fprintf(out, "bundle: built %d (%s), reused %d, failed %d; %s in %s\n",
				len(built), listOrNone(built), len(reused), len(errs), build.FormatSize(size), build.FormatDuration(time.Since(start)))
			return errors.Join(errs...)
		},
	}
	sel.flags(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even what is cached")
	return cmd
}

func listOrNone(ids []string) string {
	if len(ids) == 0 {
		return "nothing"
	}
	return strings.Join(ids, ", ")
}

func newBundleListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the cached artifacts, their sizes and where they came from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := bundle.DefaultCache()
			if err != nil {
				return err
			}
			ms, err := cache.List()
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "COMPONENT\tVERSION\tPLATFORM\tFILES\tSIZE\tMADE\tSOURCE")
			var total int64
			for _, m := range ms {
				var names []string
				for _, f := range m.Files {
					names = append(names, f.Name)
				}
				total += m.Size()
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s in %s\t%s\n", m.Component, m.Version, m.Platform(), strings.Join(names, ","),
					build.FormatSize(m.Size()), m.BuiltAt.Local().Format("2006-01-02 15:04"), build.FormatDuration(time.Duration(m.Seconds*float64(time.Second))), m.Source)
			}
			tw.Flush()
			fmt.Fprintf(out, "%d artifacts, %s, in %s\n", len(ms), build.FormatSize(total), cache.Root)
			missing := missingArtifacts(cache, ms)
			if len(missing) > 0 {
				fmt.Fprintf(out, "not cached for %s: %s (run `clusterctl bundle build`)\n", bundle.HostPlatform(), strings.Join(missing, ", "))
			}
			return err
		},
	}
}

// missingArtifacts lists the pinned artifacts absent for the host platform.
func missingArtifacts(cache *bundle.Cache, ms []bundle.Manifest) []string {
	p := bundle.HostPlatform()
	var missing []string
	for _, a := range bundle.AllArtifacts() {
		if !slices.ContainsFunc(ms, func(m bundle.Manifest) bool {
			return m.Component == a.Component && m.Version == a.Version && m.Platform() == p
		}) {
			missing = append(missing, a.ID())
		}
	}
	return missing
}

func newBundleVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every cached file and compare it with its manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := bundle.DefaultCache()
			if err != nil {
				return err
			}
			ms, err := cache.Verify()
			files := 0
			for _, m := range ms {
				files += len(m.Files)
			}
			if err != nil {
				return fmt.Errorf("bundle verify: %d artifacts checked in %s:\n%w", len(ms), cache.Root, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bundle verify: %d artifacts, %d files: all match their manifests\n", len(ms), files)
			if missing := missingArtifacts(cache, ms); len(missing) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "not cached for %s: %s\n", bundle.HostPlatform(), strings.Join(missing, ", "))
			}
			return nil
		},
	}
}

func newBundleFetchCmd() *cobra.Command {
	var sel selection
	var sums []string
	var force bool
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Download upstream's official release files into the cache (machines with internet access)",
		Long: `fetch downloads each pinned component from its upstream release location,
checks it against the pinned sha256 and only then caches it. A component whose
sha256 is not pinned is refused unless --sha256 COMPONENT=SUM gives it. The
two images are clusterctl's own: make them with
"clusterctl bundle build --only pause-image,echo-image".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			arts, err := sel.artifacts()
			if err != nil {
				return err
			}
			p, err := sel.target()
			if err != nil {
				return err
			}
			override := map[string]string{}
			for _, s := range sums {
				k, v, ok := strings.Cut(s, "=")
				if !ok || k == "" {
					return fmt.Errorf("--sha256 %q: want COMPONENT=SUM", s)
				}
				override[k] = strings.ToLower(v)
			}
			cache, err := bundle.DefaultCache()
			if err != nil {
				return err
			}
			f := &fetch.Fetcher{Cache: cache, Platform: p, Out: cmd.OutOrStdout(), Force: force}
			srcs := fetch.Upstream()
			var errs []error
			for _, a := range arts {
				if a.Image != "" {
					if _, err := cache.VerifyArtifact(a.Component, a.Version, p); err != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "skipping %s: clusterctl's own image, made by `clusterctl bundle build --only %s`\n", a.ID(), a.Component)
					}
					continue
				}
				src, err := fetch.SourceFor(srcs, a)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				sum := override[a.Component+"@"+a.Version]
				if sum == "" {
					sum = override[a.Component]
				}
				if _, err := f.Fetch(cmd.Context(), a, src, sum); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	sel.flags(cmd)
	cmd.Flags().StringArrayVar(&sums, "sha256", nil, "sha256 of the download for `COMPONENT[@VERSION]=SUM` when the table pins none (repeatable)")
	cmd.Flags().BoolVar(&force, "force", false, "download even what is cached")
	return cmd
}
