package kubeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// RewriteReport is what RewriteSecrets did.
type RewriteReport struct {
	Rewritten int // written back
	Changed   int // changed or deleted by someone else since listed: written with the current key by that writer
}

// secretPage is how many Secrets one list call returns. A Secret holds
// up to 1 MiB (Helm keeps releases in them), so pages stay small.
const secretPage = 20

// maxSecretResponse bounds one response: a page of the largest Secrets.
const maxSecretResponse = (secretPage + 4) << 20

// RewriteSecrets writes every Secret of every namespace back unchanged.
// The API server stores an object it read with an encryption key that is
// not its write key (or unencrypted) again when it is updated, even with
// no change, so afterwards every Secret is encrypted with the write key
// (`kubectl get secrets -A -o json | kubectl replace -f -`, in pages, with
// conflicts skipped: a Secret changed since it was listed was just written
// with the current key).
func (c *Client) RewriteSecrets(ctx context.Context) (RewriteReport, error) {
	var rep RewriteReport
	cont := ""
	for {
		q := url.Values{"limit": {fmt.Sprint(secretPage)}}
		if cont != "" {
			q.Set("continue", cont)
		}
		var list struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
			Items []json.RawMessage `json:"items"`
		}
		if err := c.doLarge(ctx, http.MethodGet, "/api/v1/secrets?"+q.Encode(), nil, &list); err != nil {
			return rep, fmt.Errorf("list Secrets: %w", err)
		}
		for _, raw := range list.Items {
			var obj map[string]any
			if err := json.Unmarshal(raw, &obj); err != nil {
				return rep, fmt.Errorf("list Secrets: %w", err)
			}
			md, _ := obj["metadata"].(map[string]any)
			ns, _ := md["namespace"].(string)
			name, _ := md["name"].(string)
			if ns == "" || name == "" {
				return rep, errors.New("list Secrets: an item without namespace or name")
			}
			// List items carry no kind; an update needs it.
			obj["apiVersion"], obj["kind"] = "v1", "Secret"
			body, err := json.Marshal(obj)
			if err != nil {
				return rep, err
			}
			p := "/api/v1/namespaces/" + url.PathEscape(ns) + "/secrets/" + url.PathEscape(name)
			err = c.doLarge(ctx, http.MethodPut, p, body, nil)
			var se *StatusError
			switch {
			case err == nil:
				rep.Rewritten++
			case errors.As(err, &se) && (se.Code == http.StatusConflict || se.Code == http.StatusNotFound):
				rep.Changed++
			default:
				return rep, fmt.Errorf("rewrite Secret %s/%s: %w", ns, name, err)
			}
		}
		cont = list.Metadata.Continue
		if cont == "" {
			return rep, nil
		}
	}
}

// doLarge is a JSON request whose answer may be as large as a page of
// Secrets.
func (c *Client) doLarge(ctx context.Context, method, path string, body []byte, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSecretResponse+1))
	if err != nil {
		return err
	}
	if len(b) > maxSecretResponse {
		return fmt.Errorf("%s %s: answer larger than %d MiB", method, path, maxSecretResponse>>20)
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
