package addons

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/kubeapi"
	"github.com/clusterctl/clusterctl/kubeapi/kubeapitest"
)

func testCoreDNS() CoreDNS {
	return CoreDNS{Image: "localhost/clusterctl-coredns:v1.14.6", Version: "1.14.6", Replicas: 2,
		ClusterDomain: "cluster.local", ClusterIP: netip.MustParseAddr("10.96.0.10"), Forward: []string{"/etc/resolv.conf"}}
}

func TestCorefile(t *testing.T) {
	c := testCoreDNS()
	f := c.Corefile()
	for _, want := range []string{"kubernetes cluster.local in-addr.arpa ip6.arpa {", "pods insecure", "forward . /etc/resolv.conf {", "health {", "ready\n", "cache 30 {", "loop\n"} {
		if !strings.Contains(f, want) {
			t.Errorf("Corefile lacks %q:\n%s", want, f)
		}
	}
	c.Forward = nil
	if strings.Contains(c.Corefile(), "forward") {
		t.Error("no resolvers, yet a forward")
	}
}

// The objects, labelled and applied in order, through server-side apply as
// clusterctl; the second set (a new version) drops the PDB and changes the
// replicas: the PDB is pruned, an object of another add-on and one without
// the label are left alone.
func TestApplyAndPrune(t *testing.T) {
	api, client := kubeapitest.Start(t)
	ctx := context.Background()
	other := "/api/v1/namespaces/kube-system/configmaps/other"
	api.Put(other, map[string]any{"metadata": map[string]any{"name": "other", "namespace": "kube-system", "labels": map[string]any{Label: "metrics-server"}}})
	mine := "/api/v1/namespaces/kube-system/configmaps/by-hand"
	api.Put(mine, map[string]any{"metadata": map[string]any{"name": "by-hand", "namespace": "kube-system"}})

	r := &Reconciler{Client: client, Name: "coredns", Objects: testCoreDNS().Objects()}
	if err := r.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, req := range api.Requests {
		if strings.HasPrefix(req, "PATCH ") {
			if !strings.Contains(req, "fieldManager=clusterctl") || !strings.Contains(req, "force=true") || !strings.HasSuffix(req, " application/apply-patch+yaml") {
				t.Errorf("not a forced server-side apply as clusterctl: %s", req)
			}
			kinds = append(kinds, strings.Split(strings.Fields(req)[1], "/")[len(strings.Split(strings.Fields(req)[1], "/"))-2])
		}
	}
	if want := []string{"serviceaccounts", "clusterroles", "clusterrolebindings", "configmaps", "services", "deployments", "poddisruptionbudgets"}; !slices.Equal(kinds, want) {
		t.Errorf("applied %v, want %v", kinds, want)
	}
	dep, ok := api.Object("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
	if !ok {
		t.Fatalf("no Deployment: %v", api.Paths())
	}
	if dep["metadata"].(map[string]any)["labels"].(map[string]any)[Label] != "coredns" {
		t.Errorf("the Deployment lacks the add-on label: %v", dep["metadata"])
	}
	svc, _ := api.Object("/api/v1/namespaces/kube-system/services/kube-dns")
	if svc["spec"].(map[string]any)["clusterIP"] != "10.96.0.10" {
		t.Errorf("kube-dns Service: %v", svc["spec"])
	}
	if deleted, err := r.Prune(ctx); err != nil || len(deleted) != 0 {
		t.Fatalf("prune of the set just applied: %v %v", deleted, err)
	}

	next := testCoreDNS()
	next.Replicas = 3
	var objs []kubeapi.Object
	for _, o := range next.Objects() {
		if o["kind"] != "PodDisruptionBudget" {
			objs = append(objs, o)
		}
	}
	r = &Reconciler{Client: client, Name: "coredns", Objects: objs}
	if err := r.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	deleted, err := r.Prune(ctx)
	if err != nil || len(deleted) != 1 || deleted[0].String() != "PodDisruptionBudget kube-system/coredns" {
		t.Fatalf("prune after the PDB was dropped: %v %v", deleted, err)
	}
	for _, p := range []string{other, mine} {
		if _, ok := api.Object(p); !ok {
			t.Errorf("prune deleted %s, which is not coredns's", p)
		}
	}
	dep, _ = api.Object("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
	if dep["spec"].(map[string]any)["replicas"] != float64(3) {
		t.Errorf("replicas after the second apply: %v", dep["spec"].(map[string]any)["replicas"])
	}

	// Turned off: an empty set prunes everything of coredns.
	deleted, err = (&Reconciler{Client: client, Name: "coredns"}).Prune(ctx)
	if err != nil || len(deleted) != 6 {
		t.Errorf("prune of everything: %d deleted, %v", len(deleted), err)
	}
	if got := api.Paths(); !slices.Equal(got, []string{mine, other}) {
		t.Errorf("left after turning it off: %v", got)
	}
}

func TestWorkloadReadiness(t *testing.T) {
	three := int64(3)
	w := workload{}
	w.Metadata.Generation = 2
	w.Spec.Replicas = &three
	w.Status.ObservedGeneration = 1
	if got := w.notReady("Deployment"); !strings.Contains(got, "not seen") {
		t.Errorf("old observed generation: %q", got)
	}
	w.Status.ObservedGeneration, w.Status.Replicas, w.Status.UpdatedReplicas, w.Status.AvailableReplicas = 2, 4, 3, 3
	if got := w.notReady("Deployment"); got != "3 of 4 replicas updated" {
		t.Errorf("an old replica still there: %q", got)
	}
	w.Status.Replicas, w.Status.AvailableReplicas = 3, 2
	if got := w.notReady("Deployment"); got != "2 of 3 replicas available" {
		t.Errorf("one unavailable: %q", got)
	}
	w.Status.AvailableReplicas = 3
	if got := w.notReady("Deployment"); got != "" {
		t.Errorf("rolled out: %q", got)
	}
	var api workload
	if api.notReady("APIService") == "" {
		t.Error("an APIService without conditions counts as available")
	}
}

func TestManifestFiles(t *testing.T) {
	objs, err := Labelled("coredns", testCoreDNS().Objects())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var names []string
	for _, o := range objs {
		n, err := FileName(o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Encode(o)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
		if err := writeFile(dir+"/"+n, b); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Contains(names, "manifest.Deployment.kube-system.coredns.json") || !slices.Contains(names, "manifest.ClusterRole.system:coredns.json") {
		t.Errorf("file names: %v", names)
	}
	back, err := ReadDir(dir)
	if err != nil || len(back) != len(objs) {
		t.Fatalf("read back %d objects, %v", len(back), err)
	}
	if _, err := ReadDir(t.TempDir()); err == nil {
		t.Error("an empty folder reads as an add-on with no objects")
	}
}

func writeFile(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }

// The probe DaemonSet: on every node, unprivileged, no API token, ready
// while the API Service's absolute name resolves from the pod; absent
// without a probe image.
func TestCoreDNSProbe(t *testing.T) {
	c := testCoreDNS()
	if objs := c.Objects(); slices.ContainsFunc(objs, func(o kubeapi.Object) bool { return o["kind"] == "DaemonSet" }) {
		t.Fatal("a probe DaemonSet without a probe image")
	}
	c.ProbeImage = "localhost/clusterctl-echo:v1"
	var ds kubeapi.Object
	for _, o := range c.Objects() {
		if o["kind"] == "DaemonSet" {
			ds = o
		}
	}
	if ds == nil {
		t.Fatal("no probe DaemonSet")
	}
	pod := ds["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	if pod["automountServiceAccountToken"] != false {
		t.Error("the probe mounts an API token")
	}
	tol := pod["tolerations"].([]any)
	if len(tol) != 1 || tol[0].(map[string]any)["operator"] != "Exists" || len(tol[0].(map[string]any)) != 1 {
		t.Errorf("tolerations %v: want every taint tolerated", tol)
	}
	ctr := pod["containers"].([]any)[0].(map[string]any)
	if ctr["image"] != c.ProbeImage {
		t.Errorf("image %v", ctr["image"])
	}
	cmd := ctr["readinessProbe"].(map[string]any)["exec"].(map[string]any)["command"].([]any)
	if want := []any{"/echo", "lookup", "kubernetes.default.svc.cluster.local."}; !slices.Equal(cmd, want) {
		t.Errorf("readiness command %v, want %v", cmd, want)
	}
	if _, err := Labelled("coredns", c.Objects()); err != nil {
		t.Fatal(err)
	}
}

// A drain with kubectl's defaults refuses pods with emptyDir data unless
// the pod names those volumes safe to lose: every add-on Deployment's
// emptyDir volumes must be named, or an upgrade with drain = true stops at
// the add-on's own pods.
func TestAddonEmptyDirsAreSafeToEvict(t *testing.T) {
	c := testCoreDNS()
	c.ProbeImage = "localhost/clusterctl-echo:v1"
	objs := append(c.Objects(), MetricsServer{Image: "localhost/clusterctl-metrics-server:v0.8.0", Replicas: 1}.Objects()...)
	checked := 0
	for _, o := range objs {
		if o["kind"] != "Deployment" {
			continue
		}
		tmpl := o["spec"].(map[string]any)["template"].(map[string]any)
		spec := tmpl["spec"].(map[string]any)
		vols, _ := spec["volumes"].([]any)
		var safe string
		if md, ok := tmpl["metadata"].(map[string]any); ok {
			if ann, ok := md["annotations"].(map[string]any); ok {
				safe, _ = ann[kubeapi.SafeToEvictVolumesAnnotation].(string)
			}
		}
		for _, v := range vols {
			v := v.(map[string]any)
			if _, ok := v["emptyDir"]; !ok {
				continue
			}
			checked++
			if !slices.Contains(strings.Split(safe, ","), v["name"].(string)) {
				t.Errorf("%s: emptyDir volume %s is not in %s (%q)", o["metadata"].(map[string]any)["name"], v["name"], kubeapi.SafeToEvictVolumesAnnotation, safe)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no emptyDir volume checked: metrics-server has one")
	}
}
