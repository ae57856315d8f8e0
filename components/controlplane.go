package components

import (
	"fmt"
	"maps"
	"net"
	"path"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/spec"
)

// Ports of the control plane.
const (
	EtcdClientPort    = 2379
	EtcdPeerPort      = 2380
	EtcdMetricsPort   = 2381
	APIServerPort     = 6443
	ControllerMgrPort = 10257
	SchedulerPort     = 10259
)

func url(scheme, host string, port int) string {
	return scheme + "://" + net.JoinHostPort(host, itoa(port))
}

// etcd renders one etcd member: TLS 1.2+ with strong cipher suites for
// clients and peers with client certificate auth on both, run as the
// system user etcd, which owns its data in /var/lib/etcd (0700) and its
// keys in EtcdTLSDir.
func etcd(in Input, h spec.Host) (Desired, error) {
	version := in.version(bundle.Etcd)
	arts, err := artifacts(in.Cache, in.platform(h.Name), bundle.Etcd, version, "etcd", "etcdctl")
	if err != nil {
		return Desired{}, err
	}
	addr := advertiseAddress(h)
	var initial []string
	for _, m := range in.Cluster.EtcdHosts() {
		initial = append(initial, m.Name+"="+url("https", advertiseAddress(m), EtcdPeerPort))
	}
	p := pki.HostPath
	args := map[string]string{
		"name":                        h.Name,
		"data-dir":                    EtcdDataDir,
		"listen-client-urls":          url("https", addr, EtcdClientPort) + "," + url("https", "127.0.0.1", EtcdClientPort),
		"advertise-client-urls":       url("https", addr, EtcdClientPort),
		"listen-peer-urls":            url("https", addr, EtcdPeerPort),
		"initial-advertise-peer-urls": url("https", addr, EtcdPeerPort),
		"initial-cluster":             strings.Join(initial, ","),
		"initial-cluster-state":       "new",
		"initial-cluster-token":       in.Cluster.Name(),
		"listen-metrics-urls":         url("http", "127.0.0.1", EtcdMetricsPort),
		"client-cert-auth":            "true",
		"peer-client-cert-auth":       "true",
		"snapshot-count":              "10000",
		"auto-compaction-retention":   "8",
	}
	// The agent probes etcd with the health-check pair as root; etcd itself
	// runs as EtcdUser and reads its own copies (security.go). The copies
	// under /etc/kubernetes/pki stay, so a lost local state is restored
	// from a control plane as before.
	shared, err := in.pkiFiles("etcd/ca.crt",
		pki.IDEtcdServer(h.Name)+".crt", pki.IDEtcdServer(h.Name)+".key",
		pki.IDEtcdPeer(h.Name)+".crt", pki.IDEtcdPeer(h.Name)+".key",
		pki.IDEtcdHealthcheck+".crt", pki.IDEtcdHealthcheck+".key")
	if err != nil {
		return Desired{}, fmt.Errorf("etcd on %s: %w", h.Name, err)
	}
	own, tlsFlags, err := etcdTLS(in, h.Name)
	if err != nil {
		return Desired{}, fmt.Errorf("etcd on %s: %w", h.Name, err)
	}
	maps.Copy(args, tlsFlags)
	return Desired{
		Component: bundle.Etcd, Host: h.Name, Address: addr, Version: version,
		Artifacts: arts, Shared: append(shared, own...),
		Users: []SystemUser{{Name: EtcdUser, Home: EtcdDataDir}},
		Dirs: []Dir{
			{Path: EtcdDataDir, Mode: 0o700, Owner: EtcdUser},
			{Path: EtcdTLSDir, Mode: 0o700, Owner: EtcdUser},
			// kube-bench's etcd checks (CIS 1.1.7, 1.1.8) stat everything
			// named *etcd* under the configured path, which for clusterctl
			// is this folder itself: root only, 600, as they ask (root
			// needs no search bit; nothing else ever reads it).
			{Path: path.Join(ConfigRoot, bundle.Etcd), Mode: 0o600},
		},
		Unit: agent.Unit{
			Name: bundle.Etcd, Version: version,
			Exec: arts[0].Dest,
			Args: mergeArgs(args, in.extraArgs(bundle.Etcd)),
			Dir:  EtcdDataDir,
			User: EtcdUser,
			// Handed over before every start, so whatever a generation
			// that ran as root (the previous release, a rollback) wrote is
			// etcd's before it reads it.
			Owns: []string{EtcdDataDir, EtcdTLSDir},
			Health: agent.Health{
				Type: agent.HealthHTTPS, URL: url("https", "127.0.0.1", EtcdClientPort) + "/health",
				CAFile:   p("etcd/ca.crt"),
				CertFile: p(pki.IDEtcdHealthcheck + ".crt"), KeyFile: p(pki.IDEtcdHealthcheck + ".key"),
			},
			StopTimeout: agent.Duration(30 * time.Second),
			Limits:      agent.Limits{NOFILE: 65536},
		},
	}, nil
}

// apiServer renders one kube-apiserver: etcd over TLS, Node+RBAC
// authorization with NodeRestriction, no anonymous access, no profiling,
// an audit log with a policy, Secrets encrypted at rest, TLS 1.2+ with
// strong cipher suites, and service-account token signing.
func apiServer(in Input, h spec.Host) (Desired, error) {
	version := in.version(bundle.KubeAPIServer)
	arts, err := artifacts(in.Cache, in.platform(h.Name), bundle.KubeAPIServer, version, bundle.KubeAPIServer)
	if err != nil {
		return Desired{}, err
	}
	var etcdServers []string
	for _, m := range in.Cluster.EtcdHosts() {
		etcdServers = append(etcdServers, url("https", advertiseAddress(m), EtcdClientPort))
	}
	p := pki.HostPath
	domain := ClusterDomain
	args := map[string]string{
		"advertise-address":                  advertiseAddress(h),
		"secure-port":                        itoa(APIServerPort),
		"etcd-servers":                       strings.Join(etcdServers, ","),
		"etcd-cafile":                        p("etcd/ca.crt"),
		"etcd-certfile":                      p(pki.IDAPIServerEtcd + ".crt"),
		"etcd-keyfile":                       p(pki.IDAPIServerEtcd + ".key"),
		"client-ca-file":                     p("ca.crt"),
		"tls-cert-file":                      p(pki.IDAPIServer + ".crt"),
		"tls-private-key-file":               p(pki.IDAPIServer + ".key"),
		"kubelet-client-certificate":         p(pki.IDAPIServerKubelet + ".crt"),
		"kubelet-client-key":                 p(pki.IDAPIServerKubelet + ".key"),
		"kubelet-certificate-authority":      p("ca.crt"),
		"kubelet-preferred-address-types":    "InternalIP,Hostname",
		"service-cluster-ip-range":           in.Cluster.ServiceCIDR().String(),
		"service-account-issuer":             "https://kubernetes.default.svc." + domain,
		"service-account-key-file":           p("sa.pub"),
		"service-account-signing-key-file":   p("sa.key"),
		"authorization-mode":                 "Node,RBAC",
		"enable-admission-plugins":           "NodeRestriction",
		"anonymous-auth":                     "false",
		"profiling":                          "false",
		"allow-privileged":                   "true",
		"enable-bootstrap-token-auth":        "false",
		"audit-log-path":                     AuditLog,
		"audit-log-maxage":                   itoa(AuditLogMaxAge),
		"audit-log-maxbackup":                itoa(AuditLogMaxBackup),
		"audit-log-maxsize":                  itoa(AuditLogMaxSize),
		"audit-policy-file":                  currentFile(bundle.KubeAPIServer, AuditPolicyFile),
		"encryption-provider-config":         currentFile(bundle.KubeAPIServer, EncryptionConfigFile),
		"requestheader-client-ca-file":       p("front-proxy-ca.crt"),
		"requestheader-allowed-names":        "front-proxy-client",
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-username-headers":     "X-Remote-User",
		"proxy-client-cert-file":             p(pki.IDFrontProxyClient + ".crt"),
		"proxy-client-key-file":              p(pki.IDFrontProxyClient + ".key"),
		// A graceful and prompt stop: in-flight requests finish, new ones
		// get 429 with Retry-After (an HA client retries elsewhere), watches
		// are ended within 2s, and the HTTP server gets 2s instead of the
		// request timeout (60s), so the process exits in about 2s instead
		// of being killed at the agent's stop timeout.
		"shutdown-send-retry-after":               "true",
		"shutdown-watch-termination-grace-period": "2s",
	}
	maps.Copy(args, tlsArgs())
	ring, err := in.keyring()
	if err != nil {
		return Desired{}, fmt.Errorf("kube-apiserver on %s: %w", h.Name, err)
	}
	encryption, err := encryptionConfig(ring)
	if err != nil {
		return Desired{}, fmt.Errorf("kube-apiserver on %s: %w", h.Name, err)
	}
	// The etcd and front-proxy CA keys are not used by the API server but
	// kept on every control plane, so a lost local state can be restored
	// from any of them; so is the encryption keyring.
	shared, err := in.pkiFiles("ca.crt", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.pub", "sa.key", pki.KeyringFile,
		pki.IDAPIServer+".crt", pki.IDAPIServer+".key",
		pki.IDAPIServerKubelet+".crt", pki.IDAPIServerKubelet+".key",
		pki.IDAPIServerEtcd+".crt", pki.IDAPIServerEtcd+".key",
		pki.IDFrontProxyClient+".crt", pki.IDFrontProxyClient+".key")
	if err != nil {
		return Desired{}, fmt.Errorf("kube-apiserver on %s: %w", h.Name, err)
	}
	// The admin kubeconfig goes with the API server, so `kubectl` works on
	// a control-plane host.
	admin, err := in.kubeconfigFile(pki.KubeconfigAdmin, path.Join(pki.HostKubeDir, pki.KubeconfigAdmin))
	if err != nil {
		return Desired{}, fmt.Errorf("kube-apiserver on %s: %w", h.Name, err)
	}
	shared = append(shared, admin)
	return Desired{
		Component: bundle.KubeAPIServer, Host: h.Name, Address: advertiseAddress(h), Version: version,
		Artifacts: arts, Shared: shared,
		Config: []File{{Path: AuditPolicyFile, Data: []byte(auditPolicy), Mode: 0o600}, encryption},
		Unit: agent.Unit{
			Name: bundle.KubeAPIServer, Version: version,
			Exec: arts[0].Dest,
			Args: mergeArgs(args, in.extraArgs(bundle.KubeAPIServer)),
			Health: agent.Health{
				Type: agent.HealthHTTPS, URL: url("https", "127.0.0.1", APIServerPort) + "/readyz",
				CAFile:   p("ca.crt"),
				CertFile: p(pki.IDAPIServerKubelet + ".crt"), KeyFile: p(pki.IDAPIServerKubelet + ".key"),
			},
			Limits: agent.Limits{NOFILE: 65536},
			// It drains requests on SIGTERM but can hang on open watches;
			// a switch should not wait half a minute for that.
			StopTimeout: agent.Duration(10 * time.Second),
		},
	}, nil
}

// controllerManager renders kube-controller-manager: its own kubeconfig,
// leader election, bound to 127.0.0.1, one service account per controller,
// and the cluster CA to sign kubelet serving and client CSRs.
func controllerManager(in Input, h spec.Host) (Desired, error) {
	version := in.version(bundle.KubeControllerManager)
	arts, err := artifacts(in.Cache, in.platform(h.Name), bundle.KubeControllerManager, version, bundle.KubeControllerManager)
	if err != nil {
		return Desired{}, err
	}
	p := pki.HostPath
	conf := path.Join(pki.HostKubeDir, pki.KubeconfigCM)
	args := map[string]string{
		"kubeconfig":                       conf,
		"authentication-kubeconfig":        conf,
		"authorization-kubeconfig":         conf,
		"bind-address":                     "127.0.0.1",
		"secure-port":                      itoa(ControllerMgrPort),
		"leader-elect":                     "true",
		"use-service-account-credentials":  "true",
		"profiling":                        "false",
		"client-ca-file":                   p("ca.crt"),
		"requestheader-client-ca-file":     p("front-proxy-ca.crt"),
		"root-ca-file":                     p("ca.crt"),
		"service-account-private-key-file": p("sa.key"),
		"cluster-signing-cert-file":        p("ca.crt"),
		"cluster-signing-key-file":         p("ca.key"),
		"service-cluster-ip-range":         in.Cluster.ServiceCIDR().String(),
		"cluster-cidr":                     in.Cluster.PodCIDR().String(),
		"cluster-name":                     in.Cluster.Name(),
		"controllers":                      "*,bootstrapsigner,tokencleaner",
	}
	maps.Copy(args, tlsArgs())
	shared, err := in.pkiFiles("ca.crt", "ca.key", "front-proxy-ca.crt", "sa.key")
	if err != nil {
		return Desired{}, fmt.Errorf("kube-controller-manager on %s: %w", h.Name, err)
	}
	kc, err := in.kubeconfigFile(pki.KubeconfigCM, conf)
	if err != nil {
		return Desired{}, fmt.Errorf("kube-controller-manager on %s: %w", h.Name, err)
	}
	return Desired{
		Component: bundle.KubeControllerManager, Host: h.Name, Address: advertiseAddress(h), Version: version,
		Artifacts: arts, Shared: append(shared, kc),
		Unit: agent.Unit{
			Name: bundle.KubeControllerManager, Version: version,
			Exec: arts[0].Dest,
			Args: mergeArgs(args, in.extraArgs(bundle.KubeControllerManager)),
			// It serves /healthz with a self-signed certificate on loopback.
			Health:      agent.Health{Type: agent.HealthHTTPS, URL: url("https", "127.0.0.1", ControllerMgrPort) + "/healthz", InsecureLoopback: true},
			StopTimeout: agent.Duration(10 * time.Second),
		},
	}, nil
}

// scheduler renders kube-scheduler: its own kubeconfig, leader election,
// bound to 127.0.0.1, no profiling.
func scheduler(in Input, h spec.Host) (Desired, error) {
	version := in.version(bundle.KubeScheduler)
	arts, err := artifacts(in.Cache, in.platform(h.Name), bundle.KubeScheduler, version, bundle.KubeScheduler)
	if err != nil {
		return Desired{}, err
	}
	conf := path.Join(pki.HostKubeDir, pki.KubeconfigScheduler)
	args := map[string]string{
		"kubeconfig":                conf,
		"authentication-kubeconfig": conf,
		"authorization-kubeconfig":  conf,
		"bind-address":              "127.0.0.1",
		"secure-port":               itoa(SchedulerPort),
		"leader-elect":              "true",
		"profiling":                 "false",
	}
	maps.Copy(args, tlsArgs())
	kc, err := in.kubeconfigFile(pki.KubeconfigScheduler, conf)
	if err != nil {
		return Desired{}, fmt.Errorf("kube-scheduler on %s: %w", h.Name, err)
	}
	return Desired{
		Component: bundle.KubeScheduler, Host: h.Name, Address: advertiseAddress(h), Version: version,
		Artifacts: arts, Shared: []File{kc},
		Unit: agent.Unit{
			Name: bundle.KubeScheduler, Version: version,
			Exec: arts[0].Dest,
			Args: mergeArgs(args, in.extraArgs(bundle.KubeScheduler)),
			// Like the controller-manager: /healthz, self-signed, loopback only.
			Health:      agent.Health{Type: agent.HealthHTTPS, URL: url("https", "127.0.0.1", SchedulerPort) + "/healthz", InsecureLoopback: true},
			StopTimeout: agent.Duration(10 * time.Second),
		},
	}, nil
}

// advertiseAddress is the IP the API server announces in the kubernetes
// Service endpoints.
func advertiseAddress(h spec.Host) string {
	if a := h.NodeAddress(); a.IsValid() {
		return a.String()
	}
	return h.Address
}
