package pki

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func oneHost() Cluster {
	n := Node{Name: "n1", Addresses: addrs("10.0.0.11"), Hostnames: []string{"n1.lab.example"}}
	return Cluster{
		Name:          "lab",
		ServiceCIDR:   netip.MustParsePrefix("10.96.0.0/12"),
		ControlPlanes: []Node{n},
		EtcdMembers:   []Node{n},
		Nodes:         []Node{n},
	}
}

// haCluster has three control planes (also etcd members and nodes) and two
// workers behind a load-balanced endpoint.
func haCluster() Cluster {
	cp := []Node{
		{Name: "cp1", Addresses: addrs("10.0.0.11", "fd00::11")},
		{Name: "cp2", Addresses: addrs("10.0.0.12")},
		{Name: "cp3", Addresses: addrs("10.0.0.13"), Hostnames: []string{"cp3.example.org"}},
	}
	workers := []Node{
		{Name: "w1", Addresses: addrs("10.0.0.21")},
		{Name: "w2", Addresses: addrs("10.0.0.22")},
	}
	return Cluster{
		Name:          "prod",
		ClusterDomain: "corp.local",
		ServiceCIDR:   netip.MustParsePrefix("10.100.0.0/16"),
		APIEndpoint:   "api.example.org:8443",
		ControlPlanes: cp,
		EtcdMembers:   cp,
		Nodes:         append(slices.Clone(cp), workers...),
	}
}

func mustTable(t *testing.T, c Cluster) Table {
	t.Helper()
	tab, err := NewTable(c)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func ids(t Table) []string {
	var out []string
	for _, e := range t.Certs {
		out = append(out, e.ID)
	}
	return out
}

func addrStrings(a []netip.Addr) []string {
	var out []string
	for _, x := range a {
		out = append(out, x.String())
	}
	return out
}

func TestNewTableOneHost(t *testing.T) {
	tab := mustTable(t, oneHost())
	wantIDs := []string{"ca", "etcd/ca", "front-proxy-ca", "sa",
		"apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client",
		"controller-manager-client", "scheduler-client", "admin-client", "kube-proxy-client",
		"etcd/healthcheck-client", "etcd/server-n1", "etcd/peer-n1", "kubelet/n1-client", "kubelet/n1-serving"}
	if d := cmp.Diff(wantIDs, ids(tab)); d != "" {
		t.Errorf("IDs (-want +got):\n%s", d)
	}

	api, _ := tab.Entry(IDAPIServer)
	wantDNS := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
		"localhost", "n1", "n1.lab.example"}
	slices.Sort(wantDNS)
	if d := cmp.Diff(wantDNS, api.DNSNames); d != "" {
		t.Errorf("apiserver DNS SANs (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"10.0.0.11", "10.96.0.1", "127.0.0.1"}, addrStrings(api.IPs)); d != "" {
		t.Errorf("apiserver IP SANs (-want +got):\n%s", d)
	}

	type subj struct {
		CN, CA string
		O      []string
		Usage  Usage
	}
	wantSubj := map[string]subj{
		IDAPIServer:          {"kube-apiserver", "ca", nil, UsageServer},
		IDAPIServerKubelet:   {"kube-apiserver-kubelet-client", "ca", []string{"system:masters"}, UsageClient},
		IDAPIServerEtcd:      {"kube-apiserver-etcd-client", "etcd/ca", nil, UsageClient},
		IDFrontProxyClient:   {"front-proxy-client", "front-proxy-ca", nil, UsageClient},
		IDControllerManager:  {"system:kube-controller-manager", "ca", nil, UsageClient},
		IDScheduler:          {"system:kube-scheduler", "ca", nil, UsageClient},
		IDAdmin:              {"kubernetes-admin", "ca", []string{"system:masters"}, UsageClient},
		IDKubeProxy:          {"system:kube-proxy", "ca", nil, UsageClient},
		IDEtcdHealthcheck:    {"kube-etcd-healthcheck-client", "etcd/ca", nil, UsageClient},
		"etcd/server-n1":     {"n1", "etcd/ca", nil, UsageServerClient},
		"etcd/peer-n1":       {"n1", "etcd/ca", nil, UsageServerClient},
		"kubelet/n1-client":  {"system:node:n1", "ca", []string{"system:nodes"}, UsageClient},
		"kubelet/n1-serving": {"system:node:n1", "ca", []string{"system:nodes"}, UsageServer},
	}
	for id, want := range wantSubj {
		e, ok := tab.Entry(id)
		if !ok {
			t.Errorf("%s missing", id)
			continue
		}
		got := subj{e.CommonName, e.CA, e.Organization, e.Usage}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s subject (-want +got):\n%s", id, d)
		}
	}

	srv, _ := tab.Entry("etcd/server-n1")
	if d := cmp.Diff([]string{"localhost", "n1", "n1.lab.example"}, srv.DNSNames); d != "" {
		t.Errorf("etcd server DNS (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"10.0.0.11", "127.0.0.1"}, addrStrings(srv.IPs)); d != "" {
		t.Errorf("etcd server IPs (-want +got):\n%s", d)
	}
	peer, _ := tab.Entry("etcd/peer-n1")
	if d := cmp.Diff([]string{"10.0.0.11"}, addrStrings(peer.IPs)); d != "" {
		t.Errorf("etcd peer IPs (-want +got):\n%s", d)
	}

	type kc struct{ Name, Cert, Server, User, HostPath string }
	var gotKC []kc
	for _, k := range tab.Kubeconfigs {
		if k.ClusterName != "lab" || k.CA != IDClusterCA {
			t.Errorf("%s: cluster %q CA %q", k.Name, k.ClusterName, k.CA)
		}
		gotKC = append(gotKC, kc{k.Name, k.Cert, k.Server, k.UserName, k.HostPath})
	}
	wantKC := []kc{
		{"admin.conf", "admin-client", "https://10.0.0.11:6443", "kubernetes-admin", "/etc/kubernetes/admin.conf"},
		{"controller-manager.conf", "controller-manager-client", "https://127.0.0.1:6443", "system:kube-controller-manager", "/etc/kubernetes/controller-manager.conf"},
		{"scheduler.conf", "scheduler-client", "https://127.0.0.1:6443", "system:kube-scheduler", "/etc/kubernetes/scheduler.conf"},
		{"kube-proxy.conf", "kube-proxy-client", "https://10.0.0.11:6443", "system:kube-proxy", "/etc/kubernetes/kube-proxy.conf"},
		{"kubelet-n1.conf", "kubelet/n1-client", "https://10.0.0.11:6443", "system:node:n1", "/etc/kubernetes/kubelet.conf"},
	}
	if d := cmp.Diff(wantKC, gotKC); d != "" {
		t.Errorf("kubeconfigs (-want +got):\n%s", d)
	}
}

func TestNewTableHA(t *testing.T) {
	tab := mustTable(t, haCluster())

	api, _ := tab.Entry(IDAPIServer)
	for _, want := range []string{"cp1", "cp2", "cp3", "cp3.example.org", "api.example.org", "localhost",
		"kubernetes.default.svc.corp.local"} {
		if !slices.Contains(api.DNSNames, want) {
			t.Errorf("apiserver DNS SANs %v lack %s", api.DNSNames, want)
		}
	}
	for _, notWant := range []string{"w1", "w2", "kubernetes.default.svc.cluster.local"} {
		if slices.Contains(api.DNSNames, notWant) {
			t.Errorf("apiserver DNS SANs %v contain %s", api.DNSNames, notWant)
		}
	}
	if d := cmp.Diff([]string{"10.0.0.11", "10.0.0.12", "10.0.0.13", "10.100.0.1", "127.0.0.1", "fd00::11"}, addrStrings(api.IPs)); d != "" {
		t.Errorf("apiserver IP SANs (-want +got):\n%s", d)
	}

	var etcd, kubelet []string
	for _, id := range ids(tab) {
		switch {
		case strings.HasPrefix(id, "etcd/server-") || strings.HasPrefix(id, "etcd/peer-"):
			etcd = append(etcd, id)
		case strings.HasPrefix(id, "kubelet/"):
			kubelet = append(kubelet, id)
		}
	}
	if d := cmp.Diff([]string{"etcd/server-cp1", "etcd/peer-cp1", "etcd/server-cp2", "etcd/peer-cp2", "etcd/server-cp3", "etcd/peer-cp3"}, etcd); d != "" {
		t.Errorf("etcd entries (-want +got):\n%s", d)
	}
	if len(kubelet) != 10 {
		t.Errorf("kubelet entries: %v, want client+serving for 5 nodes", kubelet)
	}
	w1, _ := tab.Entry(IDKubeletServing("w1"))
	if d := cmp.Diff([]string{"10.0.0.21"}, addrStrings(w1.IPs)); d != "" || !slices.Equal(w1.DNSNames, []string{"w1"}) {
		t.Errorf("w1 serving SANs: %v %v", w1.DNSNames, w1.IPs)
	}

	for _, k := range tab.Kubeconfigs {
		want := "https://api.example.org:8443"
		if k.Name == KubeconfigCM || k.Name == KubeconfigScheduler {
			want = "https://127.0.0.1:6443"
		}
		if k.Server != want {
			t.Errorf("%s: server %s, want %s", k.Name, k.Server, want)
		}
	}
}

func TestEndpointForms(t *testing.T) {
	for _, tc := range []struct {
		endpoint, url string
		port          int
	}{
		{"", "https://10.0.0.11:6443", 0},
		{"", "https://10.0.0.11:7443", 7443},
		{"10.0.0.100", "https://10.0.0.100:6443", 0},
		{"lb.example:443", "https://lb.example:443", 0},
		{"fd00::100", "https://[fd00::100]:6443", 0},
		{"[fd00::100]", "https://[fd00::100]:6443", 0},
		{"[fd00::100]:8443", "https://[fd00::100]:8443", 0},
	} {
		c := oneHost()
		c.APIEndpoint, c.APIServerPort = tc.endpoint, tc.port
		got, err := c.ServerURL()
		if err != nil || got != tc.url {
			t.Errorf("endpoint %q: %q, %v; want %q", tc.endpoint, got, err, tc.url)
		}
	}
	c := oneHost()
	c.APIEndpoint = "10.0.0.100"
	api, _ := mustTable(t, c).Entry(IDAPIServer)
	if !slices.Contains(api.IPs, netip.MustParseAddr("10.0.0.100")) {
		t.Errorf("endpoint address not in apiserver SANs: %v", api.IPs)
	}
}

func TestServiceIP(t *testing.T) {
	for cidr, want := range map[string]string{
		"10.96.0.0/12":      "10.96.0.1",
		"10.96.5.7/12":      "10.96.0.1",
		"fd00:10:96::/108":  "fd00:10:96::1",
		"192.168.10.0/24":   "192.168.10.1",
		"172.16.0.128/25":   "172.16.0.129",
		"2001:db8:1::/112":  "2001:db8:1::1",
		"10.0.0.0/30":       "10.0.0.1",
		"fd00:10:96::10/64": "fd00:10:96::1",
	} {
		c := Cluster{ServiceCIDR: netip.MustParsePrefix(cidr)}
		got, err := c.ServiceIP()
		if err != nil || got.String() != want {
			t.Errorf("%s: %v, %v; want %s", cidr, got, err, want)
		}
	}
	for _, cidr := range []string{"10.0.0.0/31", "10.0.0.1/32"} {
		c := Cluster{ServiceCIDR: netip.MustParsePrefix(cidr)}
		if _, err := c.ServiceIP(); err == nil {
			t.Errorf("%s: no error", cidr)
		}
	}
}

func TestNewTableRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Cluster)
		want   string
	}{
		{"no service CIDR", func(c *Cluster) { c.ServiceCIDR = netip.Prefix{} }, "service CIDR is not set"},
		{"no control planes", func(c *Cluster) { c.ControlPlanes = nil; c.APIEndpoint = "lb" }, "no control-plane hosts"},
		{"no etcd", func(c *Cluster) { c.EtcdMembers = nil }, "no etcd members"},
		{"upper-case name", func(c *Cluster) { c.Nodes = []Node{{Name: "N1"}} }, `node #1: name "N1" must be a lower-case DNS name`},
		{"path in name", func(c *Cluster) { c.EtcdMembers = []Node{{Name: "../x"}} }, `etcd member #1: name "../x"`},
		{"duplicate", func(c *Cluster) { c.Nodes = append(c.Nodes, c.Nodes[0]) }, "node n1: listed twice"},
		{"bad hostname", func(c *Cluster) { c.ControlPlanes[0].Hostnames = []string{"a_b"} }, `control plane n1: host name "a_b"`},
		{"bad endpoint port", func(c *Cluster) { c.APIEndpoint = "lb:99999" }, `bad port "99999"`},
		{"bad endpoint host", func(c *Cluster) { c.APIEndpoint = "lb/x" }, "neither an IP address nor a DNS name"},
		{"no endpoint address", func(c *Cluster) { c.ControlPlanes = []Node{{Name: "n1"}} }, "no API endpoint"},
		{"bad domain", func(c *Cluster) { c.ClusterDomain = "-x" }, `cluster domain "-x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := oneHost()
			c.ControlPlanes = slices.Clone(c.ControlPlanes)
			c.ControlPlanes[0].Hostnames = slices.Clone(c.ControlPlanes[0].Hostnames)
			tc.mutate(&c)
			_, err := NewTable(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTableValidate(t *testing.T) {
	base := mustTable(t, oneHost())
	for _, tc := range []struct {
		name   string
		mutate func(*Table)
		want   string
	}{
		{"leaf before its CA", func(t *Table) { t.Certs[0], t.Certs[4] = t.Certs[4], t.Certs[0] }, `apiserver: signing CA "ca" is not a CA listed before it`},
		{"duplicate", func(t *Table) { t.Certs = append(t.Certs, t.Certs[5]) }, "listed twice"},
		{"escaping path", func(t *Table) { t.Certs[5].ID = "../x" }, "clean relative path"},
		{"kubeconfig without cert", func(t *Table) { t.Kubeconfigs[0].Cert = "nope" }, `client certificate "nope"`},
		{"kubeconfig http", func(t *Table) { t.Kubeconfigs[0].Server = "http://x" }, "not an https URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := Table{Certs: slices.Clone(base.Certs), Kubeconfigs: slices.Clone(base.Kubeconfigs)}
			tc.mutate(&tab)
			err := tab.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
