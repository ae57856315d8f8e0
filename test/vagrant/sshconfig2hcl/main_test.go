package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/clusterctl/clusterctl/spec"
)

var update = flag.Bool("update", false, "rewrite the golden .hcl files in testdata")

// clusterBlock completes the generated blocks into a whole spec.
const clusterBlock = `cluster "vagrant" {
  kubernetes_version = "1.37.2"
}
`

func TestGolden(t *testing.T) {
	tests := []struct {
		input string
		args  []string
	}{
		// Each VM behind its own forwarded port on 127.0.0.1, its own key.
		{input: "virtualbox.txt", args: []string{"-machines", "../machines.json"}},
		// Management-network addresses, quoted key paths with a space.
		{input: "libvirt.txt", args: []string{"-machines", "../machines.json"}},
		// Shared (insecure) keys, no machines file: roles from the names.
		{input: "insecure-key.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			var out bytes.Buffer
			args := append(tt.args, filepath.Join("testdata", tt.input))
			if err := run(args, nil, &out); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(tt.input, ".txt")+".hcl")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("output differs from %s (-want +got; -update rewrites it):\n%s", golden, diff)
			}
			if !bytes.Equal(hclwrite.Format(out.Bytes()), out.Bytes()) {
				t.Error("output is not in canonical HCL format")
			}
			// With a cluster block it is a valid spec.
			c, diags := spec.Parse(map[string][]byte{"hosts.hcl": out.Bytes(), "cluster.hcl": []byte(clusterBlock)}, spec.VarInputs{Env: []string{}})
			if diags.HasErrors() || c == nil {
				t.Errorf("the generated blocks do not make a valid spec: %v", diags)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name, input string
		args        []string
		want        string
	}{
		{"empty", "", nil, "no Host entries"},
		{"before host", "HostName 1.2.3.4\n", nil, "input:1: HostName before the first Host line"},
		{"bad port", "Host cp-1\n  HostName 1.2.3.4\n  Port 99999\n", nil, `input:3: host cp-1: Port "99999"`},
		{"no hostname", "Host cp-1\n  User vagrant\n", nil, "input:1: host cp-1 has no HostName"},
		{"pattern", "Host cp-*\n", nil, "one machine name per Host line"},
		{"proxy", "Host cp-1\n  HostName h\n  ProxyCommand nc %h %p\n", nil, "ProxyCommand is not supported"},
		{"unterminated", "Host cp-1\n  IdentityFile \"/a b\n", nil, "input:2: unterminated quote"},
		{"unknown role", "Host db-1\n  HostName 10.0.0.1\n", nil, "host db-1: no roles"},
		{"not in machines", "Host db-1\n  HostName 10.0.0.1\n", []string{"-machines", "../machines.json"}, "host db-1 is not in the machines file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "input")
			if err := os.WriteFile(file, []byte(tt.input), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err := run(append(tt.args, file), nil, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if out.Len() > 0 {
				t.Errorf("wrote output despite the error: %q", out.String())
			}
		})
	}
}

func TestWritesFileAtomically(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "hosts.hcl")
	if err := run([]string{"-o", dst, "testdata/insecure-key.txt"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil || !strings.Contains(string(b), `host "worker-1"`) {
		t.Fatalf("%s: %q %v", dst, b, err)
	}
	// A failed run leaves the earlier file as it was.
	if err := run([]string{"-o", dst, "testdata/missing.txt"}, nil, nil); err == nil {
		t.Fatal("missing input accepted")
	}
	if after, _ := os.ReadFile(dst); !bytes.Equal(after, b) {
		t.Error("a failed run changed the output file")
	}
}
