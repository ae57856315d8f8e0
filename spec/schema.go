package spec

import "github.com/hashicorp/hcl/v2"

// The block and attribute names of the spec language. docs/spec.md is the
// user-facing reference; keep the two in step.

func rootSchema() *hcl.BodySchema {
	return &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "cluster", LabelNames: []string{"name"}},
		{Type: "ssh"},
		{Type: "host", LabelNames: []string{"name"}},
		{Type: "component", LabelNames: []string{"name"}},
		{Type: "addon", LabelNames: []string{"name"}},
		{Type: "image", LabelNames: []string{"name"}},
		{Type: "registry", LabelNames: []string{"host"}},
		{Type: "artifacts"},
		{Type: "security"},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
	}}
}

func clusterSchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "kubernetes_version", Required: true},
		{Name: "pod_cidr"},
		{Name: "service_cidr"},
		{Name: "cluster_dns"},
		{Name: "api_endpoint"},
	}, Blocks: []hcl.BlockHeaderSchema{{Type: "upgrade"}}}
}

func upgradeSchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "worker_batch_size"},
		{Name: "drain"},
		{Name: "drain_timeout"},
		{Name: "drain_force"},
		{Name: "drain_delete_emptydir_data"},
		{Name: "gate_timeout"},
		{Name: "keep_generations"},
	}}
}

func sshSchema() *hcl.BodySchema {
	return &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "user"},
			{Name: "port"},
			{Name: "identity_files"},
			{Name: "use_agent"},
			{Name: "known_hosts_file"},
			{Name: "host_key_policy"},
			{Name: "sudo"},
			{Name: "sudo_password_env"},
			{Name: "identity_passphrase_env"},
			{Name: "connect_timeout"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "bastion"}},
	}
}

func bastionSchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "address", Required: true},
		{Name: "user"},
		{Name: "port"},
	}}
}

func hostSchema() *hcl.BodySchema {
	return &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "address", Required: true},
			{Name: "internal_address"},
			{Name: "port"},
			{Name: "user"},
			{Name: "roles", Required: true},
			{Name: "labels"},
			{Name: "taints"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "ssh"}},
	}
}

func componentSchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "version"},
		{Name: "extra_args"},
		{Name: "hosts"},
	}}
}

func artifactsSchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "dir"},
		{Name: "mirror"},
	}}
}
