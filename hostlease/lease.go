// Package hostlease is the lock a run holds on the cluster's hosts: a
// lease file on every host, taken, renewed and released under flock(1) by
// a small shell script, so it works on a fresh host before any agent is
// installed. Expiry is computed and checked with the host's clock only, so
// the clocks of workstations and hosts need not agree.
package hostlease

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/provision"
)

// DefaultDir is where the lease lives on a host, in the agent's state
// folder; destroy's release removes it with the lease.
const DefaultDir = "/var/lib/clusterctl/lease"

// TTL is how long a lease lasts without renewal: a killed run's lease
// expires at most this long after its last renewal.
const TTL = 20 * time.Second

// RenewEvery is how often a running holder renews; TTL leaves room for
// three missed renewals.
const RenewEvery = 5 * time.Second

// ErrHeld means another run holds an unexpired lease on a host: waiting for
// it to end (or force-unlock when it is gone) helps.
var ErrHeld = errors.New("host lease is held by another run")

// ErrLost means the lease this run held was taken over or removed
// (force-unlock from another machine).
var ErrLost = errors.New("host lease was lost")

// Holder says who holds a lease; it is written by the workstation and
// shown to whoever is refused.
type Holder struct {
	ID        string    `json:"id"` // the run ID (the local state lock's ID)
	Who       string    `json:"who"`
	Operation string    `json:"operation"`
	Started   time.Time `json:"started"`
	// Replaces is the ID of a run whose local lock this run took over
	// because its process died on this machine (kill -9, a crash): its
	// leases are taken over at once instead of after they expire, so an
	// interrupted apply resumes immediately from the same folder.
	Replaces string `json:"-"`
}

// Lease is a lease file as read from a host.
type Lease struct {
	Holder  Holder `json:"holder"`
	Expires int64  `json:"expires"` // host clock, Unix seconds
	// HostNow is the host's clock when the lease was read (not stored).
	HostNow int64 `json:"-"`
}

// ExpiresIn is how long the lease lasts by the host's clock.
func (l Lease) ExpiresIn() time.Duration { return time.Duration(l.Expires-l.HostNow) * time.Second }

// Live reports whether the lease has not expired on its host.
func (l Lease) Live() bool { return l.Expires > l.HostNow }

// HeldError names the holder of a lease on a host.
type HeldError struct {
	Host  string
	Lease Lease
}

func (e *HeldError) Error() string {
	h := e.Lease.Holder
	return fmt.Sprintf("host %s is locked by %s (operation %q, run ID %s, since %s, expires in %s unless renewed); if that run is gone, wait for the lease to expire or run `clusterctl force-unlock %s`",
		e.Host, printable(h.Who), printable(h.Operation), printable(h.ID), h.Started.UTC().Format(time.RFC3339), e.Lease.ExpiresIn(), printable(h.ID))
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// Runner is what the lease needs of a host: a shell (provision.Client).
type Runner interface {
	Name() string
	Run(ctx context.Context, cmd provision.Cmd) (provision.Result, error)
}

var _ Runner = (*provision.Client)(nil)

// Locker takes leases on hosts through their SSH clients.
type Locker struct {
	Dir string        // on the host; "" is DefaultDir
	TTL time.Duration // 0 is TTL
	// Every is how often AcquireAll's renewer renews; 0 is RenewEvery.
	Every time.Duration
}

func (l Locker) dir() string {
	if l.Dir == "" {
		return DefaultDir
	}
	return l.Dir
}

func (l Locker) ttl() int {
	if l.TTL <= 0 {
		return int(TTL / time.Second)
	}
	return max(int(l.TTL/time.Second), 1)
}

// script does one lease operation under flock on the lease folder. It
// prints "now=<host seconds>" and, on "held" or "read", the lease file.
// Exit 3: held by another run (acquire) or not ours any more (renew).
// Only id and expires are parsed here, from the fixed start the script
// writes itself; the holder JSON is passed through untouched.
const script = `set -eu
op=$1 d=$2 id=$3 ttl=$4 holder=$5 prev=${6:-}
f=$d/lease.json
if [ ! -d "$d" ] && [ "$op" != acquire ] && [ "$op" != renew ]; then echo "now=$(date +%s)"; exit 0; fi
mkdir -p "$d"
chmod 0700 "$d"
exec 9>"$d/lease.lock"
if command -v flock >/dev/null 2>&1; then
	flock -w 10 9 || { echo "cannot lock $d/lease.lock" >&2; exit 4; }
fi
now=$(date +%s)
echo "now=$now"
cur= exp=0
if [ -f "$f" ]; then
	line=$(sed -n '1s/^{"id":"\([A-Za-z0-9._-]*\)","expires":\([0-9]*\),.*/\1 \2/p' "$f")
	if [ -n "$line" ]; then cur=${line%% *} exp=${line##* }; fi
fi
write() {
	printf '{"id":"%s","expires":%s,"holder":%s}\n' "$id" "$((now + ttl))" "$holder" >"$f.tmp"
	mv -f "$f.tmp" "$f"
}
case $op in
acquire)
	if [ -n "$cur" ] && [ "$cur" != "$id" ] && [ "$cur" != "$prev" ] && [ "$exp" -gt "$now" ]; then echo held; cat "$f"; exit 3; fi
	write ;;
renew)
	if [ "$cur" != "$id" ]; then echo lost; [ -f "$f" ] && cat "$f"; exit 3; fi
	write ;;
release|purge)
	if [ "$cur" = "$id" ]; then rm -f "$f"; fi
	# purge (after destroy): leave no trace when no other run holds a lease.
	if [ "$op" = purge ] && [ ! -f "$f" ]; then rm -f "$d/lease.lock"; rmdir "$d" "${d%/*}" 2>/dev/null || true; fi ;;
force)
	if [ -f "$f" ] && { [ -z "$id" ] || [ "$cur" = "$id" ] || [ -z "$cur" ]; }; then echo removed; cat "$f"; rm -f "$f"; fi ;;
read)
	if [ -f "$f" ]; then echo read; cat "$f"; fi ;;
esac
`

// run runs the script for op and returns its exit code and output.
func (l Locker) run(ctx context.Context, h Runner, op, id string, holder []byte, prev ...string) (int, string, error) {
	if holder == nil {
		holder = []byte("null")
	}
	line := "sh -c " + quote(script) + " lease " + quote(op) + " " + quote(l.dir()) + " " + quote(id) + " " +
		strconv.Itoa(l.ttl()) + " " + quote(string(holder))
	for _, p := range prev {
		line += " " + quote(p)
	}
	res, err := h.Run(ctx, provision.Cmd{Line: line})
	var ee *provision.ExitError
	if err != nil && errors.As(err, &ee) && res.ExitCode == 3 {
		return 3, string(res.Stdout), nil
	}
	if err != nil {
		return res.ExitCode, "", fmt.Errorf("lease %s: %w", op, err)
	}
	return 0, string(res.Stdout), nil
}

// parse reads the script's output: the host's clock and, if printed, a
// lease file.
func parse(out string) (Lease, bool, error) {
	var l Lease
	first, rest, _ := strings.Cut(out, "\n")
	n, err := strconv.ParseInt(strings.TrimPrefix(first, "now="), 10, 64)
	if err != nil || !strings.HasPrefix(first, "now=") {
		return l, false, fmt.Errorf("unexpected lease script output %q", printable(first))
	}
	_, file, ok := strings.Cut(rest, "\n")
	if !ok || len(bytes.TrimSpace([]byte(file))) == 0 {
		l.HostNow = n
		return l, false, nil
	}
	if err := json.Unmarshal([]byte(file), &l); err != nil {
		return Lease{HostNow: n}, true, fmt.Errorf("the lease file is corrupt: %s", printable(err.Error()))
	}
	l.HostNow = n
	return l, true, nil
}

// Acquire takes the lease on h for holder, or fails with a *HeldError
// when another run's lease there has not expired.
func (l Locker) Acquire(ctx context.Context, h Runner, holder Holder) error {
	b, err := json.Marshal(holder)
	if err != nil {
		return err
	}
	var prev []string
	if holder.Replaces != "" {
		prev = []string{holder.Replaces}
	}
	code, out, err := l.run(ctx, h, "acquire", holder.ID, b, prev...)
	if err != nil {
		return err
	}
	if code == 3 {
		lease, _, perr := parse(out)
		if perr != nil {
			return fmt.Errorf("lease acquire: held by another run: %w", perr)
		}
		return &HeldError{Host: h.Name(), Lease: lease}
	}
	return nil
}

// Renew extends this run's lease on h by the TTL; ErrLost when it is not
// this run's any more.
func (l Locker) Renew(ctx context.Context, h Runner, holder Holder) error {
	b, err := json.Marshal(holder)
	if err != nil {
		return err
	}
	code, out, err := l.run(ctx, h, "renew", holder.ID, b)
	if err != nil {
		return err
	}
	if code == 3 {
		if lease, ok, _ := parse(out); ok && lease.Holder.ID != "" {
			return fmt.Errorf("%w: now held by %s (run ID %s)", ErrLost, printable(lease.Holder.Who), printable(lease.Holder.ID))
		}
		return fmt.Errorf("%w: it was removed (force-unlock?)", ErrLost)
	}
	return nil
}

// Release removes this run's lease on h; another run's is left alone.
// purge also removes the lease folder when no lease is left (destroy).
func (l Locker) Release(ctx context.Context, h Runner, id string, purge bool) error {
	op := "release"
	if purge {
		op = "purge"
	}
	_, _, err := l.run(ctx, h, op, id, nil)
	return err
}

// Read returns the lease on h, if there is a file.
func (l Locker) Read(ctx context.Context, h Runner) (Lease, bool, error) {
	_, out, err := l.run(ctx, h, "read", "", nil)
	if err != nil {
		return Lease{}, false, err
	}
	return parse(out)
}

// ForceRelease removes the lease on h if it has run ID id ("" or an
// unreadable file: whatever it holds) and returns what was removed.
func (l Locker) ForceRelease(ctx context.Context, h Runner, id string) (Lease, bool, error) {
	_, out, err := l.run(ctx, h, "force", id, nil)
	if err != nil {
		return Lease{}, false, err
	}
	first, rest, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(rest, "removed") {
		return Lease{}, false, nil
	}
	lease, _, _ := parse(first + "\n" + rest)
	return lease, true, nil
}

// quote makes s one word for a POSIX shell.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// printable clips s and escapes what could drive a terminal.
func printable(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
