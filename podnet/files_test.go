package podnet

import (
	"context"
	"os"
	"testing"
)

// The installed network list is root's alone (CIS 1.1.9), also one an
// earlier clusterctl wrote 0644 with the same content.
func TestConfListIsRootOnly(t *testing.T) {
	c := Config{ConfDir: t.TempDir(), ConfName: "10-clusterctl.conflist"}
	list := []byte(`{"cniVersion":"1.0.0","name":"x","plugins":[]}`)
	if err := os.WriteFile(c.confPath(), list, 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := c.syncConfList(context.Background(), list); err != nil || len(changed) != 0 {
		t.Fatalf("sync: %v %v", changed, err)
	}
	st, err := os.Stat(c.confPath())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
}
