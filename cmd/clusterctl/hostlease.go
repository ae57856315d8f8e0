package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/hostlease"
)

// warnRunning prints a warning line for each host whose lease is held by
// a run under way: plan reads without the lock, and what it shows may
// change under it.
func warnRunning(ctx context.Context, s *apply.Session, w io.Writer) {
	seen := map[string]bool{}
	for _, c := range s.Clients() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		l, ok, err := hostlease.Locker{}.Read(ctx, c)
		cancel()
		if err != nil || !ok || !l.Live() || seen[l.Holder.ID] {
			continue
		}
		seen[l.Holder.ID] = true
		he := &hostlease.HeldError{Host: c.Name(), Lease: l}
		fmt.Fprintf(w, "Warning: a run is under way: %v\n", he)
	}
}

// forceReleaseHosts removes the host lease with run ID id from every host
// of the spec and says where it removed one.
func forceReleaseHosts(ctx context.Context, s *apply.Session, id string, w io.Writer) (int, error) {
	var errs []error
	n := 0
	for _, c := range s.Clients() {
		l, ok, err := hostlease.Locker{}.ForceRelease(ctx, c, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("host %s: force-unlock the host lease: %w", c.Name(), err))
			continue
		}
		if ok {
			n++
			fmt.Fprintf(w, "Released the host lease on %s held by %q (operation %q, run ID %q).\n", c.Name(), l.Holder.Who, l.Holder.Operation, l.Holder.ID)
		}
	}
	return n, errors.Join(errs...)
}
