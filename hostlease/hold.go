package hostlease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Held is a run's lease on a set of hosts, renewed in the background
// until Release.
type Held struct {
	locker Locker
	holder Holder
	hosts  []Runner
	onLost func(host string, err error)
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	// Purge names hosts whose lease folder goes with the release (hosts
	// that left the spec: the run removed clusterctl from them).
	Purge map[string]bool
}

// AcquireAll takes the lease on every host, in the order of their names, so
// two runs that share any host meet at the first shared one. When a host
// refuses, the leases taken so far are released and the error (a
// *HeldError) names the holder. onLost, if set, is called from the
// renewer when a renewal finds the lease gone or taken over.
func (l Locker) AcquireAll(ctx context.Context, hosts []Runner, holder Holder, onLost func(host string, err error)) (*Held, error) {
	hosts = slices.Clone(hosts)
	slices.SortFunc(hosts, func(a, b Runner) int {
		if a.Name() < b.Name() {
			return -1
		}
		if a.Name() > b.Name() {
			return 1
		}
		return 0
	})
	h := &Held{locker: l, holder: holder, onLost: onLost, stop: make(chan struct{})}
	for _, r := range hosts {
		if err := l.Acquire(ctx, r, holder); err != nil {
			h.releaseAll(false)
			var he *HeldError
			if errors.As(err, &he) {
				return nil, err
			}
			return nil, fmt.Errorf("host %s: take the host lease: %w", r.Name(), err)
		}
		h.hosts = append(h.hosts, r)
	}
	h.wg.Add(1)
	go h.renew()
	return h, nil
}

// renew extends every lease each RenewEvery until Release.
func (h *Held) renew() {
	defer h.wg.Done()
	every := h.locker.Every
	if every <= 0 {
		every = RenewEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		for _, r := range h.hosts {
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := h.locker.Renew(ctx, r, h.holder)
			cancel()
			if err != nil && h.onLost != nil && errors.Is(err, ErrLost) {
				h.onLost(r.Name(), err)
			}
			// Other errors (a slow or cut link) are retried on the next
			// tick; the TTL allows for it, and an unreachable host stops
			// the run anyway.
		}
	}
}

// Release stops renewing and removes the lease from every host; errors
// are joined, each with its host. Safe to call more than once. purge also
// removes the lease folder (after destroy).
func (h *Held) Release(purge bool) error {
	var err error
	h.once.Do(func() {
		close(h.stop)
		h.wg.Wait()
		err = h.releaseAll(purge)
	})
	return err
}

func (h *Held) releaseAll(purge bool) error {
	var errs []error
	for _, r := range h.hosts {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := h.locker.Release(ctx, r, h.holder.ID, purge || h.Purge[r.Name()]); err != nil {
			errs = append(errs, fmt.Errorf("host %s: release the host lease: %w", r.Name(), err))
		}
		cancel()
	}
	return errors.Join(errs...)
}
