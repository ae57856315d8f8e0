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

// loadIdentity reads one private key file (a regular file of at most
// maxKeyFileSize). An encrypted key is opened with the passphrase from the
// environment variable the Config names, or else from the prompt; when
// neither is there and the agent has keys, the file is skipped (nil, nil),
// since the agent usually holds it.
func loadIdentity(file string, c Config, haveAgent bool) (ssh.Signer, error) {
	pem, err := readLocalFile(file, maxKeyFileSize)
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
	pass, skip, err := passphrase(file, c, haveAgent)
	if skip || err != nil {
		return nil, err
	}
	s, err = ssh.ParsePrivateKeyWithPassphrase(pem, pass)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: wrong passphrase or unreadable key: %w", file, err)
	}
	return s, nil
}

// passphrase finds the passphrase of an encrypted identity file; skip says
// to leave the file to the agent, which has keys.
func passphrase(file string, c Config, haveAgent bool) (pass []byte, skip bool, err error) {
	agentHint := fmt.Sprintf("add the key to ssh-agent (ssh-add %s)", file)
	if c.PassphraseEnv != "" {
		v, set := os.LookupEnv(c.PassphraseEnv)
		switch {
		case v != "":
			return []byte(v), false, nil
		case haveAgent:
			return nil, true, nil
		case set:
			return nil, false, fmt.Errorf("identity file %s is encrypted, but environment variable %s (named by identity_passphrase_env) is empty; set it to the passphrase, or %s",
				file, c.PassphraseEnv, agentHint)
		default:
			return nil, false, fmt.Errorf("identity file %s is encrypted, but environment variable %s (named by identity_passphrase_env) is not set; export it with the passphrase, or %s",
				file, c.PassphraseEnv, agentHint)
		}
	}
	switch {
	case c.Passphrase != nil:
		pass, err := c.Passphrase(file)
		if err != nil {
			return nil, false, fmt.Errorf("identity file %s: passphrase: %w", file, err)
		}
		return pass, false, nil
	case haveAgent:
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("identity file %s is encrypted: %s", file, agentHint)
}
