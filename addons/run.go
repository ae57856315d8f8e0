package addons

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/kubeapi"
)

// File names of an add-on's objects in its generation folder:
// manifest.<Kind>.<namespace>.<name>.json (no namespace for cluster-scoped
// kinds), one object each, so that a plan shows a change field by field.
const manifestPrefix, manifestSuffix = "manifest.", ".json"

// FileName is where an object goes in the generation folder.
func FileName(o kubeapi.Object) (string, error) {
	ref, err := kubeapi.RefOf(o)
	if err != nil {
		return "", err
	}
	parts := []string{ref.Kind, ref.Namespace, ref.Name}
	if ref.Namespace == "" {
		parts = []string{ref.Kind, ref.Name}
	}
	return manifestPrefix + strings.Join(parts, ".") + manifestSuffix, nil
}

// Encode is an object's file content.
func Encode(o kubeapi.Object) ([]byte, error) {
	b, err := json.MarshalIndent(o, "", "  ")
	return append(b, '\n'), err
}

// ReadDir reads the objects of a generation folder, by file name.
func ReadDir(dir string) ([]kubeapi.Object, error) {
	names, err := filepath.Glob(filepath.Join(dir, manifestPrefix+"*"+manifestSuffix))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []kubeapi.Object
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		var o kubeapi.Object
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if _, err := kubeapi.RefOf(o); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, o)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no %s*%s files", dir, manifestPrefix, manifestSuffix)
	}
	return out, nil
}

// Run keeps the add-on applied until ctx ends: it applies and prunes at
// start and every resync (every few seconds while that fails), checks the
// add-on every two seconds, and answers GET /healthz on listen with 200
// when the last apply worked and the last check passed, 503 with the
// reason otherwise — the agent's health probe, and so the gate.
func (r *Reconciler) Run(ctx context.Context, listen string, resync time.Duration, log *slog.Logger) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	status := errors.New("not applied yet")
	set := func(err error) {
		mu.Lock()
		status = err
		mu.Unlock()
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		err := status
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	var applied time.Time
	var applyErr error
	for {
		if applyErr != nil || time.Since(applied) >= resync {
			applyErr = r.Apply(ctx)
			if applyErr == nil {
				var deleted []kubeapi.Ref
				deleted, applyErr = r.Prune(ctx)
				for _, d := range deleted {
					log.Info("pruned", "object", d.String())
				}
			}
			if applyErr != nil {
				log.Warn("apply", "err", applyErr)
			} else if applied.IsZero() {
				log.Info("applied", "objects", len(r.Objects))
			}
			applied = time.Now()
		}
		if applyErr != nil {
			set(applyErr)
		} else {
			set(r.Check(ctx))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}
