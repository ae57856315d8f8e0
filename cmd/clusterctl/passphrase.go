package main

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/term"
)

// passphrasePrompt asks for an identity file's passphrase on the terminal
// (/dev/tty), once per file however many hosts are dialled in parallel.
// Without a terminal it returns an error that says to set
// identity_passphrase_env.
type passphrasePrompt struct {
	mu    sync.Mutex
	cache map[string][]byte
}

func (p *passphrasePrompt) ask(keyFile string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.cache[keyFile]; ok {
		return b, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, fmt.Errorf("%s is encrypted and there is no terminal to ask for its passphrase: set identity_passphrase_env in the ssh block, or load the key into ssh-agent", keyFile)
	}
	defer tty.Close()
	fmt.Fprintf(tty, "Passphrase for %s: ", keyFile)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("read the passphrase of %s: %w", keyFile, err)
	}
	if p.cache == nil {
		p.cache = map[string][]byte{}
	}
	p.cache[keyFile] = b
	return b, nil
}
