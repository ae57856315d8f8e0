// Command envsh is /bin/sh of the conformance busybox image.
//
// Upstream's busybox image has busybox 1.37, whose shell passes environment
// variables with names no shell variable can have (data-1, 1a: Kubernetes
// allows any printable name) on to the commands it runs; the env-var tests
// of ConfigMaps and Secrets run `sh -c env` and look for them. Debian's
// busybox 1.35, which the image is made of here, drops them. So envsh runs
// busybox's sh, whose messages the other tests expect, unless such a
// variable is set, and bash (which keeps them) when one is.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	prog, argv0 := "/bin/busybox", "sh"
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !shellName(name) {
			prog = "/bin/bash"
			break
		}
	}
	err := syscall.Exec(prog, append([]string{argv0}, os.Args[1:]...), os.Environ())
	fmt.Fprintf(os.Stderr, "sh: exec %s: %v\n", prog, err)
	os.Exit(127)
}

// shellName reports whether name can be a POSIX shell variable.
func shellName(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, r := range name {
		if r != '_' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
