package podnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Keeper holds one node's pod network in place.
type Keeper struct {
	cfg  Config
	list []byte // the CNI network list
	log  *slog.Logger
	ipt  iptables
	// Interval between full checks; route deletions are noticed at once.
	Interval time.Duration
}

// NewKeeper returns a keeper for a loaded config.
func NewKeeper(cfg Config, list []byte, log *slog.Logger) *Keeper {
	return &Keeper{cfg: cfg, list: list, log: log, Interval: 5 * time.Second}
}

// Reconcile brings the node to the config once: sysctls, plugin links, the
// network list, routes and iptables. Every part is tried even when an
// earlier one fails; the errors are joined.
func (k *Keeper) Reconcile(ctx context.Context) ([]string, error) {
	var changed []string
	var errs []error
	add := func(what string, c []string, err error) {
		changed = append(changed, c...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	c, err := syncSysctls()
	add("sysctls", c, err)
	c, err = k.cfg.syncPluginLinks()
	add("CNI plugins", c, err)
	if err == nil {
		c, err = k.cfg.syncConfList(ctx, k.list)
		add("CNI network list", c, err)
	}
	c, err = syncRoutes(k.cfg.Routes)
	add("routes", c, err)
	for _, ch := range k.cfg.chains() {
		c, err = k.ipt.sync(ctx, ch)
		add("iptables", c, err)
	}
	return changed, errors.Join(errs...)
}

// Check inspects the live state and lists what is not as configured. An
// empty list means healthy.
func (k *Keeper) Check(ctx context.Context) []string {
	problems := checkSysctls()
	problems = append(problems, k.cfg.checkPluginLinks()...)
	problems = append(problems, k.cfg.checkConfList(k.list)...)
	missing, err := checkRoutes(k.cfg.Routes)
	if err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, missing...)
	for _, ch := range k.cfg.chains() {
		p, err := k.ipt.check(ctx, ch)
		if err != nil {
			p = append(p, err.Error())
		}
		problems = append(problems, p...)
	}
	return problems
}

// ServeHTTP answers GET /healthz with 200 "ok" when Check finds nothing,
// else 503 and the problems, one a line.
func (k *Keeper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/healthz" {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if p := k.Check(ctx); len(p) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(p, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

// Run serves the health endpoint and reconciles until ctx ends: every
// Interval, and at once when one of its routes is deleted. Stopping leaves
// everything in place (pods keep their network while the keeper restarts).
func (k *Keeper) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", k.cfg.HealthAddress)
	if err != nil {
		return fmt.Errorf("health endpoint: %w", err)
	}
	srv := &http.Server{Handler: k, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	updates := make(chan netlink.RouteUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.RouteSubscribe(updates, done); err != nil {
		k.log.Warn("cannot watch route changes; checking every interval only", "err", err)
		updates = nil
	}
	k.log.Info("keeping the pod network", "node", k.cfg.Node, "pod_cidr", k.cfg.PodCIDR, "cluster_cidr", k.cfg.ClusterCIDR,
		"routes", len(k.cfg.Routes), "health", "http://"+k.cfg.HealthAddress+"/healthz")

	tick := time.NewTicker(k.Interval)
	defer tick.Stop()
	lastErr := ""
	for {
		changed, err := k.Reconcile(ctx)
		for _, c := range changed {
			k.log.Info(c)
		}
		// Log a failure once, and its end, not every interval.
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != lastErr {
			if msg != "" {
				k.log.Error("pod network not in place", "err", msg)
			} else {
				k.log.Info("pod network in place")
			}
			lastErr = msg
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case u, ok := <-updates:
			if !ok {
				updates = nil
				continue
			}
			if u.Type != unix.RTM_DELROUTE || u.Protocol != RouteProtocol {
				continue
			}
			k.log.Warn("route deleted by someone else; putting it back", "dst", prefixOf(u.Dst), "via", addrOf(u.Gw))
			// Let a burst of deletions (a flushed table) settle first.
			time.Sleep(100 * time.Millisecond)
			drain(updates)
		}
	}
}

func drain(ch chan netlink.RouteUpdate) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// Problems formats Check's list for a command line.
func Problems(p []string) string {
	p = slices.Clone(p)
	for i := range p {
		p[i] = "  " + p[i]
	}
	return strings.Join(p, "\n")
}
