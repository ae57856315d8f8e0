package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/state"
)

// LineageFile on each host names the state that last changed it, so a
// state folder rebuilt after state.json was lost keeps the cluster's
// lineage and continues its serials. Destroy removes it with the rest of
// /etc/clusterctl.
const LineageFile = "/etc/clusterctl/lineage.json"

// hostLineage is LineageFile's content.
type hostLineage struct {
	Lineage string `json:"lineage"`
	Serial  uint64 `json:"serial"`
	Cluster string `json:"cluster,omitempty"`
}

// newState starts the local state when there is none: with the lineage
// the hosts carry (the highest serial wins if they disagree) and a serial
// above every one the hosts and the backups of that lineage know, so no
// serial of the lineage is reused; a fresh lineage when the hosts carry
// none (a new cluster).
func (s *Session) newState(ctx context.Context) (*state.State, error) {
	st := state.New(s.Cluster.Name())
	var (
		mu   sync.Mutex
		best hostLineage
	)
	err := s.forEachHost(ctx, s.Cluster.Hosts(), func(ctx context.Context, h spec.Host, _ components.Host) error {
		cl, ok := s.Client(h.Name)
		if !ok {
			return errors.New("not connected")
		}
		b, err := cl.ReadFile(ctx, LineageFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", LineageFile, err)
		}
		var l hostLineage
		if err := json.Unmarshal(b, &l); err != nil || l.Lineage == "" {
			s.logf("Warning: host %s: %s is not readable; its lineage is not used", h.Name, LineageFile)
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if best.Lineage == "" || l.Serial > best.Serial {
			best = l
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if best.Lineage == "" {
		return st, nil
	}
	st.Lineage, st.Serial = best.Lineage, best.Serial
	if n, err := s.Store.MaxBackupSerial(best.Lineage); err != nil {
		return nil, fmt.Errorf("read the state backups: %w", err)
	} else if n > st.Serial {
		st.Serial = n
	}
	s.logf("The local state was missing: rebuilt from the hosts, keeping lineage %s after serial %d.", st.Lineage, st.Serial)
	s.emit(Event{Type: EventMessage, Message: fmt.Sprintf("the local state was missing: rebuilt from the hosts, keeping lineage %s after serial %d", st.Lineage, st.Serial)})
	return st, nil
}

// stampLineage writes the state's lineage and serial on every host of the
// spec, after a run that leaves clusterctl's components there.
func (s *Session) stampLineage(ctx context.Context, st *state.State) error {
	b, err := json.MarshalIndent(hostLineage{Lineage: st.Lineage, Serial: st.Serial, Cluster: st.Cluster}, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	return s.forEachHost(ctx, s.Cluster.Hosts(), func(ctx context.Context, h spec.Host, _ components.Host) error {
		cl, ok := s.Client(h.Name)
		if !ok {
			return errors.New("not connected")
		}
		if _, err := cl.WriteFile(ctx, LineageFile, b, provision.FileOptions{Mode: 0o644}); err != nil {
			return fmt.Errorf("record the state lineage: %w", err)
		}
		return nil
	})
}
