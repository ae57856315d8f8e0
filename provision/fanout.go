package provision

import (
	"context"
	"errors"
	"sync"
)

// ForEach calls fn for every item, at most limit at a time (limit < 1: all
// at once). A failure does not stop the others; errs[i] is item i's error.
func ForEach[T any](ctx context.Context, items []T, limit int, fn func(context.Context, int, T) error) []error {
	if limit < 1 || limit > len(items) {
		limit = len(items)
	}
	errs := make([]error, len(items))
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < len(items); j++ {
				errs[j] = ctx.Err()
			}
			wg.Wait()
			return errs
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(ctx, i, it)
		}()
	}
	wg.Wait()
	return errs
}

// DialAll connects to every host, at most limit dials at a time. An
// unreachable host fails after its own connect timeout while the others go
// on. clients[i] is nil where dialling cfgs[i] failed; the error joins every
// host's *Error.
func DialAll(ctx context.Context, cfgs []Config, limit int) ([]*Client, error) {
	clients := make([]*Client, len(cfgs))
	errs := ForEach(ctx, cfgs, limit, func(ctx context.Context, i int, cfg Config) error {
		c, err := Dial(ctx, cfg)
		clients[i] = c
		return err
	})
	return clients, errors.Join(errs...)
}
