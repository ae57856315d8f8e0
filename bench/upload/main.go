// Command upload compares provision's Upload with OpenSSH over the same
// link: it makes a one-host lab, then uploads one random file (100 MiB by
// default) to a fresh path each round, alternating between
// provision.Client.Upload (SFTP, fsync, remote sha256 check, rename) and
// `ssh host 'cat > f' < file` with the OpenSSH client, and prints both
// throughputs and their ratio. As root:
//
//	go run ./bench/upload [-size-mib 100] [-rounds 5]
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/lab"
	"github.com/clusterctl/clusterctl/provision"

	"github.com/clusterctl/clusterctl/bench/internal/benchkit"
)

// initArg makes this binary act as the lab host's init (see lab.Options.Self).
const initArg = "lab-init-host"

func main() {
	if len(os.Args) == 3 && os.Args[1] == initArg {
		err := lab.RunHostInit(os.Args[2])
		fmt.Fprintln(os.Stderr, "init:", err)
		os.Exit(1)
	}
	sizeMiB := flag.Int("size-mib", 100, "size of the uploaded file in MiB")
	rounds := flag.Int("rounds", 5, "rounds; each uploads once with each method")
	subnet := flag.String("subnet", "10.201.250.0/24", "subnet of the benchmark's lab")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *sizeMiB, *rounds, *subnet); err != nil {
		fmt.Fprintln(os.Stderr, "bench/upload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, sizeMiB, rounds int, subnet string) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (it makes a lab host)")
	}
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-upload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir := filepath.Join(work, "lab")
	l, err := lab.Up(ctx, lab.Options{Dir: dir, ControlPlanes: 1, Subnet: p, Self: []string{exe, initArg}})
	if err != nil {
		return err
	}
	defer func() {
		if derr := l.Down(context.WithoutCancel(ctx), nil); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	host := l.Hosts()[0]

	local := filepath.Join(work, "payload")
	if err := writeRandom(local, int64(sizeMiB)<<20); err != nil {
		return err
	}
	c, err := provision.Dial(ctx, provision.Config{
		Name: host.Name, Host: host.Address, Port: 22, User: "root",
		IdentityFiles: []string{l.ClientKeyPath()}, NoAgent: true,
		KnownHostsFiles: []string{l.KnownHostsPath()}, HostKeyPolicy: provision.HostKeyStrict,
		SSHConfigFile: "none", ConnectTimeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	sshArgs := []string{
		"-F", "/dev/null", "-i", l.ClientKeyPath(), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + l.KnownHostsPath(),
		"-o", "GlobalKnownHostsFile=/dev/null", "root@" + host.Address,
	}

	fmt.Printf("upload of %d MiB to lab host %s (%s), %d rounds, methods alternating\n", sizeMiB, host.Name, host.Address, rounds)
	var up, cat []float64 // MB/s per round
	size := float64(int64(sizeMiB) << 20)
	for r := range rounds {
		dst := fmt.Sprintf("/tmp/bench-upload-%d-%s", r, randomName())
		start := time.Now()
		tr, err := c.Upload(ctx, local, dst, provision.FileOptions{})
		if err != nil {
			return err
		}
		if tr.Skipped || tr.Sent != int64(size) {
			return fmt.Errorf("round %d: upload sent %d bytes (skipped %v), want %d", r+1, tr.Sent, tr.Skipped, int64(size))
		}
		up = append(up, size/1e6/time.Since(start).Seconds())

		catDst := dst + "-cat"
		in, err := os.Open(local)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "ssh", append(sshArgs, "cat > "+catDst)...)
		cmd.Stdin = in
		start = time.Now()
		out, err := cmd.CombinedOutput()
		elapsed := time.Since(start)
		in.Close()
		if err != nil {
			return fmt.Errorf("round %d: ssh cat: %w: %s", r+1, err, out)
		}
		cat = append(cat, size/1e6/elapsed.Seconds())
		fmt.Printf("round %d: provision.Upload %7.1f MB/s   ssh 'cat > f' %7.1f MB/s\n", r+1, up[r], cat[r])

		// Check the baseline really wrote the whole file, then free the space.
		res, err := provision.Output(ctx, c, "stat -c %s "+provision.Quote(catDst)+"; rm -f "+provision.Quote(dst)+" "+provision.Quote(catDst))
		if err != nil {
			return err
		}
		if res != fmt.Sprintf("%d\n", int64(size)) {
			return fmt.Errorf("round %d: ssh cat wrote %q bytes", r+1, res)
		}
	}
	mu, mc := benchkit.Median(up), benchkit.Median(cat)
	fmt.Printf("median: provision.Upload %.1f MB/s, ssh 'cat > f' %.1f MB/s\n", mu, mc)
	fmt.Printf("ratio provision/openssh: %.2f (target >= 0.8)\n", mu/mc)
	return nil
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func randomName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}
