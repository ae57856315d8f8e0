package main

import (
	"context"
	"fmt"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/kubeapi"
)

// rewriteSecretsCall writes every Secret back through the API server with
// an administrator kubeconfig, so each is stored with the current
// encryption key (apply runs it after the write key changes and before an
// old key is removed).
func rewriteSecretsCall(ctx context.Context, req agent.Request) (agent.Response, error) {
	c, err := kubeapi.Load(req.Kubeconfig)
	if err != nil {
		return agent.Response{}, err
	}
	defer c.Close()
	rep, err := c.RewriteSecrets(ctx)
	msg := fmt.Sprintf("rewrote %d Secrets (%d more were changed or deleted meanwhile, so already written with the current key)", rep.Rewritten, rep.Changed)
	if err != nil {
		return agent.Response{Log: []string{msg}}, fmt.Errorf("%s; then: %w", msg, err)
	}
	return agent.Response{OK: true, Log: []string{msg}}, nil
}
