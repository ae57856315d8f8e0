package agent

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteStatus renders components as an aligned table, then one line per
// probe or unit error. now is passed in so the output can be tested.
func WriteStatus(w io.Writer, comps []ComponentStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tGEN\tVERSION\tSTATE\tPID\tHEALTH\tRESTARTS\tUPTIME\tLAST EXIT")
	for _, c := range comps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			c.Name, orDash(c.Generation), dash(c.Version), c.State, orDash(c.PID), health(c),
			c.Restarts, uptime(c.Since, now), lastExit(c.LastExit, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range comps {
		if c.ProbeError != "" {
			fmt.Fprintf(w, "%s: probe: %s\n", c.Name, oneLineText(c.ProbeError))
		}
		if len(c.WaitingFor) > 0 {
			fmt.Fprintf(w, "%s: waiting for %s\n", c.Name, strings.Join(c.WaitingFor, ", "))
		}
		if c.Error != "" {
			fmt.Fprintf(w, "%s: error: %s\n", c.Name, oneLineText(c.Error))
		}
	}
	return nil
}

// WriteChanges renders what a reload (or restart, stop, start) did.
func WriteChanges(w io.Writer, changes []Change) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tACTION\tGEN\tERROR")
	for _, c := range changes {
		gen := orDash(c.Generation)
		if c.FromGeneration != 0 && c.FromGeneration != c.Generation {
			gen = fmt.Sprintf("%d -> %d", c.FromGeneration, c.Generation)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, dash(c.Action), gen, dash(oneLineText(c.Error)))
	}
	return tw.Flush()
}

func health(c ComponentStatus) string {
	switch {
	case c.PID == 0:
		return "-"
	case c.Healthy:
		return "healthy"
	case c.LastProbe == nil:
		return "unknown"
	}
	return "unhealthy"
}

func lastExit(e *ExitInfo, now time.Time) string {
	if e == nil {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", e.Reason, Age(now.Sub(e.Time)))
}

func uptime(since *time.Time, now time.Time) string {
	if since == nil {
		return "-"
	}
	return Age(now.Sub(*since))
}

// Age formats a duration the way kubectl does: 45s, 3m12s, 5h4m, 2d3h.
func Age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func orDash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLineText keeps joined errors (one per line) on the line of their
// component.
func oneLineText(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
