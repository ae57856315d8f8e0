// Command sshconfig2hcl turns `vagrant ssh-config` output into clusterctl
// ssh and host blocks:
//
//	vagrant ssh-config | go run ./test/vagrant/sshconfig2hcl -machines test/vagrant/machines.json -o hosts.hcl
//
// Roles and node addresses come from the machines file the Vagrantfile
// reads; without one, hosts named cp-N are control-plane+etcd hosts and
// worker-N workers, and the SSH address is the node address.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sshconfig2hcl:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("sshconfig2hcl", flag.ContinueOnError)
	machinesFile := fs.String("machines", "", "JSON `FILE` with name, ip and roles per machine (the Vagrantfile's machines.json)")
	knownHosts := fs.String("known-hosts", "vagrant_known_hosts", "known_hosts `FILE` for the spec (relative to the spec folder); keys are recorded on first contact")
	out := fs.String("o", "", "write to `FILE` instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, name := stdin, "standard input"
	switch fs.NArg() {
	case 0:
	case 1:
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, fs.Arg(0)
	default:
		return errors.New("at most one input file (the output of `vagrant ssh-config`)")
	}
	hosts, err := parseSSHConfig(in, name)
	if err != nil {
		return err
	}
	var machines []machine
	if *machinesFile != "" {
		if machines, err = readMachines(*machinesFile); err != nil {
			return err
		}
	}
	spec, err := render(hosts, machines, *knownHosts)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(spec)
		return err
	}
	return writeAtomic(*out, spec)
}

// sshHost is one "Host" entry of `vagrant ssh-config`.
type sshHost struct {
	Name          string
	HostName      string
	Port          int
	User          string
	IdentityFiles []string
	line          int
}

// parseSSHConfig reads the ssh_config subset Vagrant prints: "Host NAME"
// lines, each followed by indented "Key value" lines.
func parseSSHConfig(r io.Reader, name string) ([]sshHost, error) {
	var (
		hosts []sshHost
		cur   *sshHost
	)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, err := splitKV(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		at := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, a...))
		}
		if strings.EqualFold(key, "Host") {
			if strings.ContainsAny(value, " *?!") {
				return nil, at("Host %q: one machine name per Host line expected, as `vagrant ssh-config` prints", value)
			}
			hosts = append(hosts, sshHost{Name: value, Port: 22, line: n})
			cur = &hosts[len(hosts)-1]
			continue
		}
		if cur == nil {
			return nil, at("%s before the first Host line; is this `vagrant ssh-config` output?", key)
		}
		switch strings.ToLower(key) {
		case "hostname":
			cur.HostName = value
		case "port":
			p, err := strconv.Atoi(value)
			if err != nil || p < 1 || p > 65535 {
				return nil, at("host %s: Port %q is not a port number", cur.Name, value)
			}
			cur.Port = p
		case "user":
			cur.User = value
		case "identityfile":
			cur.IdentityFiles = append(cur.IdentityFiles, value)
		case "proxycommand", "proxyjump":
			return nil, at("host %s: %s is not supported; reach the VMs directly", cur.Name, key)
		}
		// The rest (StrictHostKeyChecking, UserKnownHostsFile, LogLevel,
		// IdentitiesOnly, key type options) has no spec equivalent or is
		// what clusterctl does anyway.
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%s: no Host entries; run `vagrant up` first, then `vagrant ssh-config`", name)
	}
	for _, h := range hosts {
		if h.HostName == "" {
			return nil, fmt.Errorf("%s:%d: host %s has no HostName", name, h.line, h.Name)
		}
	}
	return hosts, nil
}

// splitKV splits "Key value", "Key=value" and "Key "quoted value"".
func splitKV(line string) (string, string, error) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return "", "", fmt.Errorf("%q has no value", line)
	}
	key := line[:i]
	value := strings.TrimLeft(line[i:], " \t")
	value = strings.TrimPrefix(value, "=")
	value = strings.TrimSpace(value)
	if strings.HasPrefix(value, `"`) {
		end := strings.IndexByte(value[1:], '"')
		if end < 0 {
			return "", "", fmt.Errorf("unterminated quote in %q", line)
		}
		value = value[1 : end+1]
	}
	if value == "" {
		return "", "", fmt.Errorf("%s has an empty value", key)
	}
	return key, value, nil
}

// machine is one entry of machines.json.
type machine struct {
	Name  string   `json:"name"`
	IP    string   `json:"ip"`
	Roles []string `json:"roles"`
}

func readMachines(path string) ([]machine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ms []machine
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, m := range ms {
		if m.Name == "" || len(m.Roles) == 0 {
			return nil, fmt.Errorf("%s: machine %d needs a name and roles", path, i+1)
		}
		if _, err := netip.ParseAddr(m.IP); m.IP != "" && err != nil {
			return nil, fmt.Errorf("%s: machine %s: ip %q: %w", path, m.Name, m.IP, err)
		}
	}
	return ms, nil
}

// rolesByName is the naming convention of `clusterctl lab` and the
// Vagrantfile, used when there is no machines file.
func rolesByName(name string) []string {
	switch {
	case strings.HasPrefix(name, "cp-"):
		return []string{"control-plane", "etcd"}
	case strings.HasPrefix(name, "worker-"):
		return []string{"worker"}
	}
	return nil
}

// render writes the ssh block (what all hosts share) and one host block
// per machine, in hclwrite's canonical format.
func render(hosts []sshHost, machines []machine, knownHosts string) ([]byte, error) {
	byName := map[string]machine{}
	for _, m := range machines {
		byName[m.Name] = m
	}
	user := hosts[0].User
	keys := hosts[0].IdentityFiles
	for _, h := range hosts[1:] {
		if h.User != user {
			user = ""
		}
		if !slices.Equal(h.IdentityFiles, keys) {
			keys = nil
		}
	}

	f := hclwrite.NewEmptyFile()
	body := f.Body()
	ssh := body.AppendNewBlock("ssh", nil).Body()
	if user != "" {
		ssh.SetAttributeValue("user", cty.StringVal(user))
	}
	if len(keys) > 0 {
		ssh.SetAttributeValue("identity_files", strings2cty(keys))
	}
	ssh.SetAttributeValue("known_hosts_file", cty.StringVal(knownHosts))
	// Vagrant VMs make new host keys when they are created: record them
	// on first contact, refuse a change afterwards.
	ssh.SetAttributeValue("host_key_policy", cty.StringVal("accept-new"))
	if user != "root" {
		ssh.SetAttributeValue("sudo", cty.True)
	}

	for _, h := range hosts {
		m, known := byName[h.Name]
		roles := m.Roles
		if !known {
			if len(machines) > 0 {
				return nil, fmt.Errorf("host %s is not in the machines file", h.Name)
			}
			roles = rolesByName(h.Name)
			if roles == nil {
				return nil, fmt.Errorf("host %s: no roles: name machines cp-N or worker-N, or pass -machines", h.Name)
			}
		}
		body.AppendNewline()
		hb := body.AppendNewBlock("host", []string{h.Name}).Body()
		hb.SetAttributeValue("address", cty.StringVal(h.HostName))
		if h.Port != 22 {
			hb.SetAttributeValue("port", cty.NumberIntVal(int64(h.Port)))
		}
		if m.IP != "" && m.IP != h.HostName {
			hb.SetAttributeValue("internal_address", cty.StringVal(m.IP))
		}
		if user == "" {
			hb.SetAttributeValue("user", cty.StringVal(h.User))
		}
		hb.SetAttributeValue("roles", strings2cty(roles))
		if keys == nil && len(h.IdentityFiles) > 0 {
			hb.AppendNewBlock("ssh", nil).Body().SetAttributeValue("identity_files", strings2cty(h.IdentityFiles))
		}
	}
	header := "# Written by sshconfig2hcl from `vagrant ssh-config`. Recreated VMs have new\n" +
		"# host keys: after `vagrant destroy`, delete " + knownHosts + " and run it again.\n"
	return hclwrite.Format(append([]byte(header), f.Bytes()...)), nil
}

func strings2cty(ss []string) cty.Value {
	vals := make([]cty.Value, len(ss))
	for i, s := range ss {
		vals[i] = cty.StringVal(s)
	}
	return cty.ListVal(vals)
}

// writeAtomic writes through a temporary file so a failed run never leaves
// half a spec.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
