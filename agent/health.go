package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Probe runs one health check and returns nil when it passes. Certificate
// and key files are read on every probe, so a rotated certificate is used
// without restarting anything.
func Probe(ctx context.Context, h Health) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout())
	defer cancel()
	switch h.Type {
	case HealthHTTPS, HealthHTTP:
		return probeHTTP(ctx, h)
	case HealthTCP:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", h.Address)
		if err != nil {
			return err
		}
		return c.Close()
	case HealthExec:
		return probeExec(ctx, h.Command)
	case HealthNone:
		return nil
	}
	return fmt.Errorf("unknown probe type %q", h.Type)
}

func probeHTTP(ctx context.Context, h Health) error {
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	if h.Type == HealthHTTPS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: h.InsecureLoopback && loopbackURL(h.URL)}
		if h.CAFile != "" {
			pem, err := os.ReadFile(h.CAFile)
			if err != nil {
				return fmt.Errorf("ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("ca_file %s: no PEM certificate", h.CAFile)
			}
			cfg.RootCAs = pool
		}
		if h.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(h.CertFile, h.KeyFile)
			if err != nil {
				return fmt.Errorf("client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = cfg
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s: %s", h.URL, resp.Status, oneLine(body))
	}
	return nil
}

func probeExec(ctx context.Context, argv []string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	if s := oneLine(out.Bytes()); s != "" {
		return fmt.Errorf("%s: %w: %s", argv[0], err, s)
	}
	return fmt.Errorf("%s: %w", argv[0], err)
}

// oneLine shortens probe output for status lines.
func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
