package components

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/clusterctl/clusterctl/plan"
)

// Observe turns a host's installed.json (as read with its facts) into plan
// objects, checking in one round trip that every file a component relies
// on still has the digest recorded when it was installed: a file edited by
// hand shows up as drift.
func Observe(ctx context.Context, h Host, installedJSON []byte) (Installed, []plan.Object, error) {
	inst, err := ParseInstalled(h.Name(), installedJSON)
	if err != nil {
		return Installed{}, nil, err
	}
	var paths []string
	for _, name := range inst.Names() {
		for p := range inst.Components[name].Files {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	actual := map[string]string{}
	if len(paths) > 0 {
		l := LayoutOf(h)
		onLayout := make([]string, len(paths))
		for i, p := range paths {
			onLayout[i] = l.Path(p)
		}
		// The agent's sha256sum reads only files changed since it last did
		// (a no-change plan used to hash every binary and image archive of
		// every host); sha256sum where the agent is older or missing.
		// Missing files print nothing; `|| true` because sha256sum exits 1
		// then.
		files := shellJoin(onLayout...)
		out, err := h.Run(ctx, "{ "+shellQuote(l.Path(AgentBinary))+" agent sha256sum --cache "+shellQuote(l.Path(SumCache))+" -- "+files+
			" || sha256sum -- "+files+"; } 2>/dev/null || true")
		if err != nil {
			return Installed{}, nil, fmt.Errorf("%s: check installed files: %w", h.Name(), err)
		}
		for p, sum := range parseSHA256Sum(out) {
			actual[l.HostPath(p)] = sum
		}
	}
	var objs []plan.Object
	for _, name := range inst.Names() {
		c := inst.Components[name]
		var drift []string
		for _, p := range slices.Sorted(maps.Keys(c.Files)) {
			got, ok := actual[p]
			switch {
			case !ok:
				drift = append(drift, p+" is missing")
			case got != c.Files[p]:
				// The new digest makes a second edit a different world, so a
				// saved plan made between the two is refused.
				drift = append(drift, p+" was edited (now sha256:"+got[:12]+")")
			}
		}
		objs = append(objs, c.Object(h.Name(), name, drift))
	}
	return inst, objs, nil
}

func parseSHA256Sum(out []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sum, path, ok := strings.Cut(sc.Text(), "  ")
		if ok && len(sum) == 64 {
			m[path] = sum
		}
	}
	return m
}
