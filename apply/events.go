package apply

import "time"

// Event is one machine-readable record of an apply, for CI (`apply -json`
// prints one per line). Text progress goes to Session.Log; events carry the
// same facts with fields.
type Event struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"` // see the Event* constants
	Step      string    `json:"step,omitempty"`
	Component string    `json:"component,omitempty"`
	Action    string    `json:"action,omitempty"`
	Hosts     []string  `json:"hosts,omitempty"`
	Host      string    `json:"host,omitempty"`
	Status    string    `json:"status,omitempty"` // step_end, change: done, failed, skipped
	Error     string    `json:"error,omitempty"`
	Path      string    `json:"path,omitempty"`  // upload, snapshot
	Bytes     int64     `json:"bytes,omitempty"` // upload, snapshot
	Seconds   float64   `json:"seconds,omitempty"`
	Message   string    `json:"message,omitempty"`
}

// Event types.
const (
	EventStepStart = "step_start"
	EventStepEnd   = "step_end"
	EventChange    = "change" // one host's part of a step finished
	EventUpload    = "upload"
	EventSnapshot  = "etcd_snapshot"
	EventMessage   = "message"
)

// emit sends an event to Session.Events, if set, serially.
func (s *Session) emit(e Event) {
	if s.Events == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	s.Events(e)
}
