// Package kubeapi is the little of the Kubernetes API that clusterctl's
// on-host checks need: read a Node, patch its labels and taints. It speaks
// HTTPS with the client certificate of a kubeconfig as clusterctl writes
// them (one cluster, one user, everything embedded), so the hosts need no
// kubectl and the binary no client-go.
package kubeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Client calls one API server as one user.
type Client struct {
	server string
	http   *http.Client
}

// kubeconfig is the part of a kubeconfig file Load reads.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server string `yaml:"server"`
			CAData string `yaml:"certificate-authority-data"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster string `yaml:"cluster"`
			User    string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			CertData string `yaml:"client-certificate-data"`
			KeyData  string `yaml:"client-key-data"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// Load reads a kubeconfig with embedded certificates and returns a client
// for its current context.
func Load(path string) (*Client, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func parse(b []byte) (*Client, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, err
	}
	var clusterName, userName string
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			clusterName, userName = c.Context.Cluster, c.Context.User
		}
	}
	if clusterName == "" {
		return nil, fmt.Errorf("no context %q", kc.CurrentContext)
	}
	var server, caData, certData, keyData string
	for _, c := range kc.Clusters {
		if c.Name == clusterName {
			server, caData = c.Cluster.Server, c.Cluster.CAData
		}
	}
	for _, u := range kc.Users {
		if u.Name == userName {
			certData, keyData = u.User.CertData, u.User.KeyData
		}
	}
	if server == "" || caData == "" || certData == "" || keyData == "" {
		return nil, errors.New("want a server, certificate-authority-data and a client certificate and key, all embedded")
	}
	dec := base64.StdEncoding.DecodeString
	ca, err1 := dec(caData)
	cert, err2 := dec(certData)
	key, err3 := dec(keyData)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("certificate-authority-data holds no PEM certificate")
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	tr := &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{pair}},
	}
	return &Client{server: server, http: &http.Client{Transport: tr, Timeout: 15 * time.Second}}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// StatusError is a non-2xx answer of the API server.
type StatusError struct {
	Method, Path string
	Code         int
	Message      string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), e.Message)
}

// IsNotFound reports a 404 from the API server.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var st struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(b, &st)
		if st.Message == "" {
			st.Message = string(bytes.TrimSpace(b))
		}
		return &StatusError{Method: method, Path: path, Code: resp.StatusCode, Message: st.Message}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Node is the part of a Node object clusterctl reads.
type Node struct {
	Metadata struct {
		Name            string            `json:"name"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		Annotations     map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Taints []Taint `json:"taints"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type              string    `json:"type"`
			Status            string    `json:"status"`
			Reason            string    `json:"reason"`
			Message           string    `json:"message"`
			LastHeartbeatTime time.Time `json:"lastHeartbeatTime"`
		} `json:"conditions"`
		NodeInfo struct {
			KubeletVersion   string `json:"kubeletVersion"`
			KubeProxyVersion string `json:"kubeProxyVersion"`
		} `json:"nodeInfo"`
	} `json:"status"`
}

// Taint is a node taint.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// Ready returns the node's Ready condition: whether it is True, and the
// reason and message when it is not.
func (n Node) Ready() (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			if c.Status == "True" {
				return true, ""
			}
			return false, fmt.Sprintf("Ready=%s (%s: %s)", c.Status, c.Reason, c.Message)
		}
	}
	return false, "no Ready condition yet"
}

// GetNode reads a Node.
func (c *Client) GetNode(ctx context.Context, name string) (Node, error) {
	var n Node
	err := c.do(ctx, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(name), "", nil, &n)
	return n, err
}

// PatchNode applies a JSON merge patch to a Node.
func (c *Client) PatchNode(ctx context.Context, name string, patch any) (Node, error) {
	b, err := json.Marshal(patch)
	if err != nil {
		return Node{}, err
	}
	var n Node
	err = c.do(ctx, http.MethodPatch, "/api/v1/nodes/"+url.PathEscape(name), "application/merge-patch+json", b, &n)
	return n, err
}

// DeleteNode deletes a Node that left the cluster; one already gone is
// not an error, so a removal can be run again.
func (c *Client) DeleteNode(ctx context.Context, name string) error {
	err := c.do(ctx, http.MethodDelete, "/api/v1/nodes/"+url.PathEscape(name), "", nil, nil)
	if IsNotFound(err) {
		return nil
	}
	return err
}
