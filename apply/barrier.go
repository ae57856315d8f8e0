package apply

import (
	"context"
	"sync"
)

// startBarrier holds the members of a new etcd cluster back until every
// one has its files in place, then lets them start together. A member of a
// new cluster cannot become healthy before a quorum of its peers runs; its
// health gate started on its own while the others were still uploading
// (30 lab hosts sharing one workstation's uplink took minutes) and timed
// out, leaving an etcd that can only be repaired by hand.
type startBarrier struct {
	mu      sync.Mutex
	left    int
	arrived map[string]bool
	done    chan struct{}
}

func newStartBarrier(hosts []string) *startBarrier {
	b := &startBarrier{left: len(hosts), arrived: map[string]bool{}, done: make(chan struct{})}
	if b.left == 0 {
		close(b.done)
	}
	return b
}

// arrive counts host in once; a change that fails before it starts
// arrives too (deferred), so the others never wait for it.
func (b *startBarrier) arrive(host string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.arrived[host] {
		return
	}
	b.arrived[host] = true
	b.left--
	if b.left == 0 {
		close(b.done)
	}
}

// wait arrives and blocks until every host has.
func (b *startBarrier) wait(ctx context.Context, host string) error {
	b.arrive(host)
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
