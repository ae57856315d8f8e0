package apply

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestStartBarrier(t *testing.T) {
	b := newStartBarrier([]string{"cp-1", "cp-2", "cp-3"})
	var passed atomic.Int32
	for _, h := range []string{"cp-1", "cp-2"} {
		go func() {
			if b.wait(context.Background(), h) == nil {
				passed.Add(1)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if n := passed.Load(); n != 0 {
		t.Fatalf("%d members started before the third arrived", n)
	}
	b.arrive("cp-3") // failed before its start: it must not hold the others
	b.arrive("cp-3")
	deadline := time.Now().Add(2 * time.Second)
	for passed.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := passed.Load(); n != 2 {
		t.Fatalf("%d of 2 members released", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newStartBarrier([]string{"a", "b"}).wait(ctx, "a"); err == nil {
		t.Error("a cancelled wait returned nil")
	}
	if err := newStartBarrier(nil).wait(context.Background(), "a"); err != nil {
		t.Errorf("empty barrier: %v", err)
	}
}
