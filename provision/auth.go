package provision

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// signers collects the keys to offer for one hop: the identity files first
// (in order), then the agent's keys. The returned closer releases the agent
// connection once the handshake is over.
func signers(e endpoint, c Config) ([]ssh.Signer, func(), error) {
	var out []ssh.Signer
	closeAgent := func() {}

	var agentKeys []ssh.Signer
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && !c.NoAgent {
		if conn, err := net.Dial("unix", sock); err == nil {
			closeAgent = func() { conn.Close() }
			if s, err := agent.NewClient(conn).Signers(); err == nil {
				agentKeys = s
			}
		}
	}

	var problems []string
	for _, file := range e.identityFiles {
		s, err := loadIdentity(file, c, len(agentKeys) > 0)
		switch {
		case err == nil && s != nil:
			out = append(out, s)
		case errors.Is(err, os.ErrNotExist) && !e.explicitIDs:
			// Default and ssh_config identity files are optional, as in OpenSSH.
		case err != nil:
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 && (e.explicitIDs || len(out)+len(agentKeys) == 0) {
		closeAgent()
		return nil, nil, fmt.Errorf("%w: %s", ErrAuth, strings.Join(problems, "; "))
	}
	for _, a := range agentKeys {
		if !hasKey(out, a.PublicKey()) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		closeAgent()
		return nil, nil, fmt.Errorf("%w: no key to offer: no usable ssh-agent and none of %s exists",
			ErrAuth, strings.Join(e.identityFiles, ", "))
	}
	return out, closeAgent, nil
}

func hasKey(list []ssh.Signer, k ssh.PublicKey) bool {
	for _, s := range list {
		if string(s.PublicKey().Marshal()) == string(k.Marshal()) {
			return true
		}
	}
	return false
}

// loadIdentity reads one private key file. An encrypted key is opened with
// the passphrase from the environment or the prompt; when neither is there
// and the agent has keys, the file is skipped (nil, nil), since the agent
// usually holds it.
func loadIdentity(file string, c Config, haveAgent bool) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if err != nil {
			return nil, fmt.Errorf("identity file %s: %w", file, err)
		}
		return s, nil
	}
	var pass []byte
	switch {
	case c.PassphraseEnv != "" && os.Getenv(c.PassphraseEnv) != "":
		pass = []byte(os.Getenv(c.PassphraseEnv))
	case c.Passphrase != nil:
		if pass, err = c.Passphrase(file); err != nil {
			return nil, fmt.Errorf("identity file %s: passphrase: %w", file, err)
		}
	case haveAgent:
		return nil, nil
	default:
		hint := fmt.Sprintf("add it to ssh-agent (ssh-add %s)", file)
		if c.PassphraseEnv != "" {
			hint = fmt.Sprintf("environment variable %s is empty; set it, or %s", c.PassphraseEnv, hint)
		}
		return nil, fmt.Errorf("identity file %s is encrypted: %s", file, hint)
	}
	s, err = ssh.ParsePrivateKeyWithPassphrase(pem, pass)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: wrong passphrase or unreadable key: %w", file, err)
	}
	return s, nil
}
