package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/state"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// clusterOptions are the flags of commands that act on a cluster.
type clusterOptions struct {
	spec        specOptions
	parallelism int
	stateDir    string
	gateTimeout time.Duration
}

func addClusterFlags(fs *pflag.FlagSet, o *clusterOptions) {
	addSpecFlags(fs, &o.spec)
	fs.IntVar(&o.parallelism, "parallelism", 10, "how many hosts to work on at once")
	fs.StringVar(&o.stateDir, "state-dir", "", "state folder (default: .clusterctl in the spec folder)")
	fs.DurationVar(&o.gateTimeout, "gate-timeout", 0, "how long a component may take to become healthy (default: the spec's upgrade.gate_timeout, 2m)")
}

func (o *clusterOptions) store(g *globals) *state.FileStore {
	dir := o.stateDir
	if dir == "" {
		dir = filepath.Join(g.chdir, state.DefaultDir)
	}
	return state.NewFileStore(dir)
}

// check refuses flag values out of range before anything is loaded.
func (o *clusterOptions) check() error {
	if err := checkParallelism(o.parallelism); err != nil {
		return err
	}
	if o.gateTimeout < 0 {
		return fmt.Errorf("-gate-timeout %s is out of range: it must be a positive duration such as 5m, or 0 for the spec's upgrade.gate_timeout", o.gateTimeout)
	}
	return nil
}

func checkParallelism(n int) error {
	if n < 1 {
		return fmt.Errorf("-parallelism %d is out of range: it must be 1 or more (how many hosts to work on at once)", n)
	}
	return nil
}

// openSession loads the spec and connects to every host.
func openSession(ctx context.Context, g *globals, o *clusterOptions, log, stderr io.Writer) (*apply.Session, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	c, err := loadSpec(g, &o.spec, stderr)
	if err != nil {
		return nil, err
	}
	cache, err := bundle.DefaultCache()
	if err != nil {
		return nil, err
	}
	if dir := c.Artifacts().Dir; dir != "" {
		cache = &bundle.Cache{Root: dir}
	}
	s := &apply.Session{Dir: g.chdir, Cluster: c, Store: o.store(g), Cache: cache, Parallelism: o.parallelism,
		GateTimeout: o.gateTimeout, Log: log, Passphrase: g.passphrase.ask}
	fmt.Fprintf(log, "Connecting to %d hosts ...\n", len(c.Hosts()))
	if err := s.Open(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// isTerminalReader reports whether r is a terminal (for prompts). A
// character device is not enough: /dev/null and /dev/zero are ones.
func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// gracefulStop makes long work (apply, destroy) stop in two stages: the
// first Ctrl-C or SIGTERM closes stop (running steps finish, nothing new
// starts); the second cancels the returned context, aborting. release
// ends the signal handling.
func gracefulStop(ctx context.Context, stderr io.Writer) (context.Context, <-chan struct{}, func()) {
	stop := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	// Not the caller's ctx: main cancels it on the first signal already.
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-sig:
		case <-hard.Done():
			return
		}
		fmt.Fprintln(stderr, "\nInterrupt: finishing the running steps, then stopping. Press Ctrl-C again to abort.")
		close(stop)
		select {
		case <-sig:
			cancel()
		case <-hard.Done():
		}
	}()
	return hard, stop, func() {
		signal.Stop(sig)
		cancel()
	}
}
