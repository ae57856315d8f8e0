package agent

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func fakeUsers(name string) (*user.User, error) {
	switch name {
	case "etcd":
		return &user.User{Username: "etcd", Uid: "998", Gid: "997", HomeDir: "/var/lib/etcd"}, nil
	case "toor":
		return &user.User{Username: "toor", Uid: "0", Gid: "0", HomeDir: "/root"}, nil
	}
	return nil, user.UnknownUserError(name)
}

// A unit's user becomes the process credentials: its uid, its primary
// group, no supplementary groups (root's must not leak to etcd), HOME its
// home. Root runs what names no user; an agent that is not root refuses
// to start another user's unit; a missing user is ErrNoUser.
func TestCredential(t *testing.T) {
	cred, home, err := credential("etcd", 0, fakeUsers)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&syscall.Credential{Uid: 998, Gid: 997, Groups: []uint32{}}, cred); diff != "" || home != "/var/lib/etcd" {
		t.Errorf("etcd credential (-want +got):\n%s home %q", diff, home)
	}
	if cred, home, err := credential("", 0, fakeUsers); cred != nil || home != "" || err != nil {
		t.Errorf("no user: %v %q %v", cred, home, err)
	}
	if cred, _, err := credential("etcd", 998, fakeUsers); cred != nil || err != nil {
		t.Errorf("agent already etcd: %v %v", cred, err)
	}
	if _, _, err := credential("etcd", 1000, fakeUsers); err == nil || !strings.Contains(err.Error(), "not root") {
		t.Errorf("unprivileged agent: %v", err)
	}
	if _, _, err := credential("ghost", 0, fakeUsers); !errors.Is(err, ErrNoUser) {
		t.Errorf("missing user: %v", err)
	}
	if _, _, err := credential("toor", 0, fakeUsers); err == nil {
		t.Error("a uid-0 user was accepted")
	}
	env := withEnv([]string{"HOME=/root", "PATH=/bin"}, "HOME", "/var/lib/etcd")
	if !slices.Equal(env, []string{"PATH=/bin", "HOME=/var/lib/etcd"}) {
		t.Errorf("env %v", env)
	}
}

// unit.json carries the user; a name that is no system user name is
// refused when the unit is rendered and when it is read.
func TestUnitUser(t *testing.T) {
	u := Unit{Name: "etcd", Exec: "/opt/etcd", User: "etcd", Health: Health{Type: HealthNone}}
	b, err := EncodeUnit(u)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeUnit("unit.json", b)
	if err != nil || back.User != "etcd" || !strings.Contains(string(b), `"user": "etcd"`) {
		t.Fatalf("round trip: %+v %v\n%s", back, err, b)
	}
	for _, bad := range []string{"Etcd", "etcd user", "../etcd", strings.Repeat("e", 33)} {
		u.User = bad
		if _, err := EncodeUnit(u); err == nil {
			t.Errorf("user %q accepted", bad)
		}
	}
}

// chownTree walks a tree without following links; to oneself it is
// allowed without root, a missing folder is no error.
func TestChownTree(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "member", "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "member", "wal", "0.wal"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(dir, os.Getuid(), os.Getgid()); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(filepath.Join(dir, "absent"), os.Getuid(), os.Getgid()); err != nil {
		t.Errorf("missing folder: %v", err)
	}
	u := Unit{Name: "etcd", Exec: "/opt/etcd", Owns: []string{"/var/lib/etcd"}, Health: Health{Type: HealthNone}}
	if err := u.Validate(); err == nil {
		t.Error("owns without a user accepted")
	}
	u.User = "etcd"
	if err := u.Validate(); err != nil {
		t.Error(err)
	}
	u.Owns = []string{"/"}
	if err := u.Validate(); err == nil {
		t.Error("owns / accepted")
	}
}

// As root, a unit with a user runs as that user (uid, its primary group,
// no supplementary groups, HOME its home), after the agent handed it the
// folders it owns.
func TestUnitRunsAsItsUser(t *testing.T) {
	e := newTestEnv(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	// The user must reach its working folder (the generation folder).
	for d := e.dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(e.dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "member", "db"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := sleeper("data", `echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME"`)
	u.User, u.Owns = "nobody", []string{data}
	e.install(u, 1)
	e.runAgent()
	e.waitFor("data", "running", healthyRunning)
	want := "uid=" + nobody.Uid + " gid=" + nobody.Gid + " groups=" + nobody.Gid + " home=" + nobody.HomeDir
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.readLog("data"), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", want, e.readLog("data"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range []string{data, filepath.Join(data, "member", "db")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; strconv.FormatUint(uint64(uid), 10) != nobody.Uid {
			t.Errorf("%s owned by %d, want %s", p, uid, nobody.Uid)
		}
	}
}
