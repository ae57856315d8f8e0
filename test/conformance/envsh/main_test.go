package main

import "testing"

func TestShellName(t *testing.T) {
	for name, want := range map[string]bool{
		"PATH": true, "_x1": true, "data_1": true,
		"data-1": false, "1a": false, "": false, "a.b": false, "é": false,
	} {
		if got := shellName(name); got != want {
			t.Errorf("shellName(%q) = %v, want %v", name, got, want)
		}
	}
}
