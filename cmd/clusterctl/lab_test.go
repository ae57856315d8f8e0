package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestLabCommandErrors(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"lab", "up"}, "--dir DIR is required"},
		{[]string{"lab", "up", "--dir", empty, "--subnet", "10.0.0.0"}, `--subnet "10.0.0.0"`},
		{[]string{"lab", "up", "--dir", empty, "--subnet", "10.250.9.5/24"}, "--subnet 10.250.9.5/24 has host bits set: the network is 10.250.9.0/24; pass --subnet 10.250.9.0/24"},
		{[]string{"lab", "up", "--dir", empty, "--subnet", "10.250.0.0/8"}, "pass --subnet 10.0.0.0/8"},
		{[]string{"lab", "up", "--dir", empty, "--subnet", "fd00::/64"}, "only IPv4 subnets"},
		{[]string{"lab", "status", "--dir", empty}, "no lab"},
		{[]string{"lab", "cut", "--dir", empty}, "accepts 1 arg"},
		{[]string{"lab", "kill", "--dir", empty, "cp-1"}, "no lab"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		err := Run(context.Background(), tt.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
	// Down on a folder without a lab is not an error: down is idempotent.
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"lab", "down", "--dir", empty}, &out, &errb); err != nil {
		t.Errorf("lab down without a lab: %v", err)
	}
	if !strings.Contains(out.String(), "no lab in") {
		t.Errorf("lab down without a lab printed %q", out.String())
	}
}
