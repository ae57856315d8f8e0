package podnet

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// inNetns re-runs the calling test in a fresh network namespace (its own
// routes, iptables tables and sysctls) and reports whether this is the
// parent, which must then return: the child's verdict is the test's.
func inNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv("PODNET_TEST_NETNS") == "1" {
		return false
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace")
	}
	for _, tool := range []string{"unshare", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	cmd := exec.Command("unshare", "--net", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "PODNET_TEST_NETNS=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a new network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("test failed in its network namespace: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the test did not pass in its network namespace")
	}
	return true
}

// testConfig is a node config in temp folders, with stand-in plugin files
// (libcni is not asked about them here; see the cni component tests).
func testConfig(t *testing.T) (Config, []byte) {
	t.Helper()
	dir := t.TempDir()
	plugins := filepath.Join(dir, "pkg")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bridge", "host-local"} {
		if err := os.WriteFile(filepath.Join(plugins, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		Node: "n1", PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		Routes: []Route{
			{Node: "n2", Dst: netip.MustParsePrefix("10.244.2.0/24"), Via: netip.MustParseAddr("10.9.0.2")},
			{Node: "n3", Dst: netip.MustParsePrefix("10.244.3.0/24"), Via: netip.MustParseAddr("10.9.0.3")},
		},
		ConfList: "cni.conflist", ConfDir: filepath.Join(dir, "net.d"), ConfName: "10-test.conflist",
		PluginDir: plugins, BinDir: filepath.Join(dir, "bin"), Plugins: []string{"bridge", "host-local"},
		HealthAddress: "127.0.0.1:0",
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg, []byte(`{"cniVersion":"1.0.0","name":"test","plugins":[{"type":"bridge"}]}`)
}

// withLink gives the namespace a link on 10.9.0.0/24 for routes to go
// through, and loopback.
func withLink(t *testing.T) {
	t.Helper()
	runtime.LockOSThread() // netlink and exec below act on this thread's namespace (the process's: unshare)
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	// A veth pair: both ends here, so the link has carrier.
	d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "d0"}, PeerName: "d1"}
	if err := netlink.LinkAdd(d); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("10.9.0.1/24")
	if err := netlink.AddrAdd(d, addr); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d0", "d1"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestKeeper(cfg Config, list []byte) *Keeper {
	return NewKeeper(cfg, list, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// A plain reconcile puts everything in place; the check then finds nothing,
// a second reconcile changes nothing.
func TestReconcileAndCheck(t *testing.T) {
	if inNetns(t) {
		return
	}
	withLink(t)
	ctx := context.Background()
	cfg, list := testConfig(t)
	// Validation with libcni needs real plugins; install the list by hand
	// so this test is about routes, rules, links and sysctls.
	if err := os.MkdirAll(cfg.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.confPath(), list, 0o644); err != nil {
		t.Fatal(err)
	}
	k := newTestKeeper(cfg, list)
	before := k.Check(ctx)
	for _, want := range []string{"ip_forward", "route to 10.244.2.0/24", "route to 10.244.3.0/24", "chain CLUSTERCTL-POSTROUTING is missing",
		"chain CLUSTERCTL-FORWARD is missing", "bin/bridge does not point"} {
		if !slices.ContainsFunc(before, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("check before reconcile: no problem mentioning %q in %q", want, before)
		}
	}
	changed, err := k.Reconcile(ctx)
	if err != nil {
		t.Fatalf("reconcile: %v (changed %q)", err, changed)
	}
	if p := k.Check(ctx); len(p) > 0 {
		t.Fatalf("check after reconcile: %q", p)
	}
	again, err := k.Reconcile(ctx)
	if err != nil || len(again) > 0 {
		t.Fatalf("second reconcile changed %q (err %v), want nothing", again, err)
	}

	// The kernel has the routes with the keeper's protocol, through d0.
	rs, err := ownRoutes()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, prefixOf(r.Dst).String()+" via "+addrOf(r.Gw).String())
	}
	slices.Sort(got)
	if want := []string{"10.244.2.0/24 via 10.9.0.2", "10.244.3.0/24 via 10.9.0.3"}; !slices.Equal(got, want) {
		t.Errorf("routes %q, want %q", got, want)
	}
	// The rules as iptables shows them: pods' traffic to other pods is not
	// masqueraded, the rest is.
	out, err := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-A POSTROUTING -m comment --comment \"clusterctl: masquerade pod traffic leaving the pod network\" -j CLUSTERCTL-POSTROUTING",
		"-A CLUSTERCTL-POSTROUTING -s 10.244.1.0/24 -d 10.244.0.0/16 -j RETURN",
		"-A CLUSTERCTL-POSTROUTING -s 10.244.1.0/24 -j MASQUERADE",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nat table lacks %q:\n%s", want, out)
		}
	}
}

// What someone else breaks is put back, and only the keeper's own stale
// routes are removed.
func TestRepairAndStaleRoutes(t *testing.T) {
	if inNetns(t) {
		return
	}
	withLink(t)
	ctx := context.Background()
	cfg, list := testConfig(t)
	if err := os.MkdirAll(cfg.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.confPath(), list, 0o644); err != nil {
		t.Fatal(err)
	}
	k := newTestKeeper(cfg, list)
	if _, err := k.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	// An administrator's route in the pod range, which must survive.
	foreign := &netlink.Route{Dst: ipNet(netip.MustParsePrefix("10.244.9.0/24")), Gw: netip.MustParseAddr("10.9.0.9").AsSlice()}
	if err := netlink.RouteAdd(foreign); err != nil {
		t.Fatal(err)
	}
	// Break things: delete a route, flush the masquerade chain, drop the
	// FORWARD jump, remove a plugin link.
	for _, args := range [][]string{
		{"ip", "route", "del", "10.244.2.0/24"},
		{"iptables", "-t", "nat", "-F", ChainMasquerade},
		{"iptables", "-t", "filter", "-D", "FORWARD", "-m", "comment", "--comment", "clusterctl: forward pod traffic", "-j", ChainForward},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
	}
	if err := os.Remove(filepath.Join(cfg.BinDir, "bridge")); err != nil {
		t.Fatal(err)
	}
	problems := k.Check(ctx)
	if len(problems) != 4 {
		t.Errorf("check found %d problems, want 4 (route, chain, jump, link): %q", len(problems), problems)
	}

	// The node n3 left the cluster: its route goes, the foreign one stays.
	k.cfg.Routes = k.cfg.Routes[:1]
	changed, err := k.Reconcile(ctx)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if p := k.Check(ctx); len(p) > 0 {
		t.Fatalf("check after repair: %q (changed %q)", p, changed)
	}
	all, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var dsts []string
	for _, r := range all {
		dsts = append(dsts, prefixOf(r.Dst).String())
	}
	if slices.Contains(dsts, "10.244.3.0/24") {
		t.Errorf("stale route to 10.244.3.0/24 still there: %q", dsts)
	}
	if !slices.Contains(dsts, "10.244.9.0/24") {
		t.Errorf("the administrator's route to 10.244.9.0/24 was removed: %q", dsts)
	}
}

// The health endpoint reports the live state.
func TestHealthEndpoint(t *testing.T) {
	if inNetns(t) {
		return
	}
	withLink(t)
	ctx := context.Background()
	cfg, list := testConfig(t)
	k := newTestKeeper(cfg, list)
	srv := httptest.NewServer(k)
	defer srv.Close()
	get := func() (int, string) {
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "route to 10.244.2.0/24") {
		t.Errorf("before reconcile: %d %q, want 503 naming the missing route", code, body)
	}
	if err := os.MkdirAll(cfg.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.confPath(), list, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != http.StatusOK {
		t.Errorf("after reconcile: %d %q, want 200", code, body)
	}
	// A foreign network list that sorts first would be used instead of ours.
	if err := os.WriteFile(filepath.Join(cfg.ConfDir, "00-other.conflist"), list, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "00-other.conflist sorts before") {
		t.Errorf("with a foreign list first: %d %q", code, body)
	}
}

func TestValidate(t *testing.T) {
	cfg, _ := testConfig(t)
	bad := cfg
	bad.PodCIDR = netip.MustParsePrefix("10.99.0.0/24")
	bad.Routes = append(bad.Routes, Route{Node: "n4", Dst: netip.MustParsePrefix("10.244.2.0/24"), Via: netip.MustParseAddr("10.9.0.4")})
	bad.BinDir = "relative"
	err := bad.Validate()
	for _, want := range []string{"pod_cidr 10.99.0.0/24", "also the pod CIDR of n2", `bin_dir "relative"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want an error mentioning %q", err, want)
		}
	}
}

// Load refuses unknown fields and reads the network list next to the file.
func TestLoad(t *testing.T) {
	cfg, list := testConfig(t)
	dir := t.TempDir()
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "network.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, cfg.ConfList), list, 0o644); err != nil {
		t.Fatal(err)
	}
	got, gotList, err := Load(filepath.Join(dir, "network.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got.PodCIDR != cfg.PodCIDR || len(got.Routes) != 2 || string(gotList) != string(list) {
		t.Errorf("Load: %+v %q", got, gotList)
	}
	typo := strings.Replace(string(b), `"routes"`, `"route"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "network.json"), []byte(typo), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(filepath.Join(dir, "network.json")); err == nil || !strings.Contains(err.Error(), `unknown field "route"`) {
		t.Errorf("Load of a typo: %v", err)
	}
}
