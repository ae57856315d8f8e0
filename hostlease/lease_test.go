package hostlease_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/clusterctl/clusterctl/hostlease"
	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/provision/provisiontest"
)

// dial connects to the in-process SSH server, whose commands run in a real
// shell on this machine.
func dial(t *testing.T) *provision.Client {
	t.Helper()
	env := provisiontest.InProcess(t)
	tg := env.Root
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(knownhosts.Line([]string{knownhosts.Normalize(tg.Addr)}, tg.HostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(tg.Addr)
	p, _ := strconv.Atoi(port)
	c, err := provision.Dial(context.Background(), provision.Config{
		Name: "h1", Host: host, Port: p, User: tg.User, IdentityFiles: []string{tg.IdentityFile}, NoAgent: true,
		KnownHostsFiles: []string{kh}, HostKeyPolicy: provision.HostKeyStrict, ConnectTimeout: 10 * time.Second,
		SSHConfigFile: "none",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func holder(id string) hostlease.Holder {
	return hostlease.Holder{ID: id, Who: "ann@laptop", Operation: "apply", Started: time.Unix(1_700_000_000, 0).UTC()}
}

// A second run is refused naming the first; renew and release are the
// holder's only; force-unlock removes it from anywhere.
func TestLeaseAcquireRenewRelease(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	l := hostlease.Locker{Dir: filepath.Join(t.TempDir(), "lease")}

	if _, ok, err := l.Read(ctx, c); ok || err != nil {
		t.Fatalf("read before any lease: %v %v", ok, err)
	}
	if err := l.Release(ctx, c, "run-a", false); err != nil {
		t.Fatalf("release without lease: %v", err)
	}
	if err := l.Acquire(ctx, c, holder("run-a")); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx, c, holder("run-a")); err != nil {
		t.Fatalf("the holder re-acquires: %v", err)
	}
	err := l.Acquire(ctx, c, holder("run-b"))
	var he *hostlease.HeldError
	if !errors.As(err, &he) || !errors.Is(err, hostlease.ErrHeld) {
		t.Fatalf("second run: %v", err)
	}
	for _, want := range []string{"host h1", "ann@laptop", `"apply"`, "run ID run-a", "since 2023-11-14T22:13:20Z", "expires in", "clusterctl force-unlock run-a"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	if in := he.Lease.ExpiresIn(); in <= 0 || in > hostlease.TTL {
		t.Errorf("expires in %s, want (0, %s]", in, hostlease.TTL)
	}
	if err := l.Renew(ctx, c, holder("run-a")); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx, c, holder("run-b")); !errors.Is(err, hostlease.ErrLost) {
		t.Fatalf("renew by another run: %v", err)
	}
	if err := l.Release(ctx, c, "run-b", false); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := l.Read(ctx, c); !ok || err != nil || got.Holder.ID != "run-a" || !got.Live() {
		t.Fatalf("another run's release removed the lease: %+v %v %v", got, ok, err)
	}
	if _, ok, err := l.ForceRelease(ctx, c, "run-x"); ok || err != nil {
		t.Fatalf("force-unlock with another ID: %v %v", ok, err)
	}
	got, ok, err := l.ForceRelease(ctx, c, "run-a")
	if !ok || err != nil || got.Holder.Who != "ann@laptop" {
		t.Fatalf("force-unlock: %+v %v %v", got, ok, err)
	}
	if err := l.Renew(ctx, c, holder("run-a")); !errors.Is(err, hostlease.ErrLost) {
		t.Fatalf("renew after force-unlock: %v", err)
	}
	if err := l.Acquire(ctx, c, holder("run-b")); err != nil {
		t.Fatalf("after force-unlock: %v", err)
	}
	if err := l.Release(ctx, c, "run-b", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Errorf("purge left the lease folder: %v", err)
	}
}

// A run that took over the local lock of a run that died on the same
// machine takes over that run's leases at once; nobody else can.
func TestLeaseOfReplacedRunIsTakenOver(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	l := hostlease.Locker{Dir: filepath.Join(t.TempDir(), "lease")}
	if err := l.Acquire(ctx, c, holder("run-a")); err != nil {
		t.Fatal(err)
	}
	other := holder("run-c")
	other.Replaces = "run-x"
	if err := l.Acquire(ctx, c, other); !errors.Is(err, hostlease.ErrHeld) {
		t.Fatalf("a run replacing another run took run-a's lease: %v", err)
	}
	next := holder("run-b")
	next.Replaces = "run-a"
	if err := l.Acquire(ctx, c, next); err != nil {
		t.Fatalf("the run replacing run-a: %v", err)
	}
	if got, ok, err := l.Read(ctx, c); !ok || err != nil || got.Holder.ID != "run-b" {
		t.Fatalf("lease after the takeover: %+v %v %v", got, ok, err)
	}
}

// A lease that is not renewed expires by the host's clock, and the next run
// takes it; the old holder's renewal then says it was lost.
func TestLeaseExpires(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	l := hostlease.Locker{Dir: filepath.Join(t.TempDir(), "lease"), TTL: time.Second}
	if err := l.Acquire(ctx, c, holder("run-a")); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx, c, holder("run-b")); !errors.Is(err, hostlease.ErrHeld) {
		t.Fatalf("before expiry: %v", err)
	}
	time.Sleep(2100 * time.Millisecond) // date +%s has whole seconds
	if err := l.Acquire(ctx, c, holder("run-b")); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if err := l.Renew(ctx, c, holder("run-a")); !errors.Is(err, hostlease.ErrLost) || !strings.Contains(err.Error(), "run-b") {
		t.Fatalf("renew of the expired lease: %v", err)
	}
}

// AcquireAll renews in the background, so a lease with a TTL shorter than
// the run stays held; Release frees it.
func TestAcquireAllRenews(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	l := hostlease.Locker{Dir: filepath.Join(t.TempDir(), "lease"), TTL: 2 * time.Second, Every: 300 * time.Millisecond}
	lost := make(chan string, 1)
	held, err := l.AcquireAll(ctx, []hostlease.Runner{c}, holder("run-a"), func(h string, err error) { lost <- h })
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond)
	if err := l.Acquire(ctx, c, holder("run-b")); !errors.Is(err, hostlease.ErrHeld) {
		t.Fatalf("renewed lease taken: %v", err)
	}
	if err := held.Release(false); err != nil {
		t.Fatal(err)
	}
	if err := held.Release(false); err != nil {
		t.Fatalf("second release: %v", err)
	}
	select {
	case h := <-lost:
		t.Fatalf("lease reported lost on %s", h)
	default:
	}
	if err := l.Acquire(ctx, c, holder("run-b")); err != nil {
		t.Fatalf("after release: %v", err)
	}
	// Another run's lease makes AcquireAll fail naming it.
	if _, err := l.AcquireAll(ctx, []hostlease.Runner{c}, holder("run-c"), nil); !errors.Is(err, hostlease.ErrHeld) || !strings.Contains(err.Error(), "run-b") {
		t.Fatalf("AcquireAll against a held lease: %v", err)
	}
}

// Fields a holder wrote cannot break the script or drive the terminal of
// whoever is refused.
func TestLeaseHolderIsQuoted(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	l := hostlease.Locker{Dir: filepath.Join(t.TempDir(), "lease")}
	h := holder("run-a")
	h.Who = "x'; touch /tmp/pwned; '\x1b]0;t\a"
	if err := l.Acquire(ctx, c, h); err != nil {
		t.Fatal(err)
	}
	err := l.Acquire(ctx, c, holder("run-b"))
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\a") {
		t.Fatalf("refusal: %q", err)
	}
}

// A lease file not in the script's format (edited by hand) blocks no one.
func TestCorruptLeaseIsReplaced(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	l := hostlease.Locker{Dir: filepath.Join(t.TempDir(), "lease")}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.Dir, "lease.json"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx, c, holder("run-a")); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := l.Read(ctx, c); !ok || err != nil || got.Holder.ID != "run-a" {
		t.Fatalf("after acquire: %+v %v %v", got, ok, err)
	}
}
