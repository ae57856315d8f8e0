package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	probe := now.Add(-time.Second)
	comps := []ComponentStatus{
		{Name: "containerd", Generation: 1, Version: "2.1.4", State: StateRunning, PID: 812, Since: ago(26 * time.Hour), Healthy: true, LastProbe: &probe},
		{Name: "etcd", Generation: 4, Version: "3.6.5", State: StateStarting, PID: 1234, Since: ago(12 * time.Second), Restarts: 2,
			LastProbe: &probe, ProbeError: "Get \"https://127.0.0.1:2379/health\": connection refused",
			LastExit: &ExitInfo{Time: now.Add(-3 * time.Minute), Code: -1, Signal: "SIGKILL", Reason: "signal: killed"}},
		{Name: "kubelet", Generation: 2, State: StateStarting, WaitingFor: []string{"containerd"}},
		{Name: "kube-proxy", State: StateFailed, Error: "unit.json: exec must be absolute\nhealth: type is required"},
	}
	var b strings.Builder
	if err := WriteStatus(&b, comps, now); err != nil {
		t.Fatal(err)
	}
	want := `COMPONENT   GEN  VERSION  STATE     PID   HEALTH     RESTARTS  UPTIME  LAST EXIT
containerd  1    2.1.4    running   812   healthy    0         1d2h    -
etcd        4    3.6.5    starting  1234  unhealthy  2         12s     signal: killed (3m0s ago)
kubelet     2    -        starting  -     -          0         -       -
kube-proxy  -    -        failed    -     -          0         -       -
etcd: probe: Get "https://127.0.0.1:2379/health": connection refused
kubelet: waiting for containerd
kube-proxy: error: unit.json: exec must be absolute; health: type is required
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}

	b.Reset()
	WriteChanges(&b, []Change{
		{Name: "apiserver", Action: ActionRestart, Generation: 3, FromGeneration: 2},
		{Name: "etcd", Action: ActionUnchanged, Generation: 4},
		{Name: "proxy", Error: "bad unit"},
	})
	want = `COMPONENT  ACTION     GEN     ERROR
apiserver  restart    2 -> 3  -
etcd       unchanged  4       -
proxy      -          -       bad unit
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
}

func TestSystemdUnit(t *testing.T) {
	got := SystemdUnit("/opt/clusterctl/bin/clusterctl", []string{"agent", "run", "--config-root", "/etc/cluster ctl"})
	for _, want := range []string{
		"ExecStart=/opt/clusterctl/bin/clusterctl agent run --config-root \"/etc/cluster ctl\"\n",
		"KillMode=process\n", "Restart=always\n", "Delegate=yes\n", "WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("unit lacks %q:\n%s", want, got)
		}
	}
}
