// Package testserver is a real SSH+SFTP server for tests: x/crypto/ssh with
// public-key auth and a pinned host key, commands run by /bin/sh as real OS
// users, SFTP by pkg/sftp (the server's own user) or OpenSSH's sftp-server
// (other users), and direct-tcpip forwarding for jump hosts. Nothing is
// emulated: a command's exit code, permissions and sudo are the system's.
package testserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"syscall"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// User is an account the server accepts.
type User struct {
	Name           string
	AuthorizedKeys []ssh.PublicKey
	// OS runs the user's commands and SFTP as this OS account; nil runs
	// them as the server's own process user.
	OS *user.User
}

// Options configure a Server.
type Options struct {
	HostKey ssh.Signer // nil: a fresh ed25519 key
	Users   []User
	// Forward makes the server a jump host: direct-tcpip channels are
	// connected to what it returns. Nil: forwarding is refused.
	Forward func(addr string) (net.Conn, error)
	// RefuseTCP closes every TCP connection at once, so the server is
	// reachable only through ServeConn (a host behind a bastion).
	RefuseTCP bool
}

// Server is a running SSH server on 127.0.0.1.
type Server struct {
	opts    Options
	conf    *ssh.ServerConfig
	hostKey ssh.Signer
	ln      net.Listener
	users   map[string]User

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start(opts Options) (*Server, error) {
	s := &Server{opts: opts, users: map[string]User{}, conns: map[net.Conn]struct{}{}}
	s.hostKey = opts.HostKey
	if s.hostKey == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if s.hostKey, err = ssh.NewSignerFromKey(priv); err != nil {
			return nil, err
		}
	}
	for _, u := range opts.Users {
		s.users[u.Name] = u
	}
	s.conf = &ssh.ServerConfig{
		PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			u, ok := s.users[md.User()]
			if !ok {
				return nil, fmt.Errorf("no user %q", md.User())
			}
			for _, k := range u.AuthorizedKeys {
				if string(k.Marshal()) == string(key.Marshal()) {
					return &ssh.Permissions{Extensions: map[string]string{"user": u.Name}}, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
		ServerVersion: "SSH-2.0-clusterctl-testserver",
	}
	s.conf.AddHostKey(s.hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.ln = ln
	go s.accept()
	return s, nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Port is the TCP port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// Close stops the server and drops its connections.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.Cut()
	return err
}

// Cut drops every connection and refuses new ones until Heal, like a
// pulled network cable.
func (s *Server) Cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = true
	for c := range s.conns {
		c.Close()
	}
}

// Heal accepts connections again.
func (s *Server) Heal() {
	s.mu.Lock()
	s.down = false
	s.mu.Unlock()
}

func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if s.opts.RefuseTCP {
			c.Close()
			continue
		}
		go s.ServeConn(c)
	}
}

// ServeConn serves one SSH connection on c (a TCP connection or one end of
// an in-memory pipe from a jump host).
func (s *Server) ServeConn(c net.Conn) {
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()

	sc, chans, reqs, err := ssh.NewServerConn(c, s.conf)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs) // keepalive@openssh.com gets a "no", which still proves liveness
	u := s.users[sc.Permissions.Extensions["user"]]
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go s.session(ch, creqs, u)
		case "direct-tcpip":
			go s.forward(nc)
		default:
			nc.Reject(ssh.UnknownChannelType, "unsupported channel type")
		}
	}
}

// session serves one session channel: one exec or sftp subsystem.
func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request, u User) {
	var started bool
	var proc *exec.Cmd
	exited := make(chan struct{})
	var mu sync.Mutex
	for req := range reqs {
		switch req.Type {
		case "env":
			req.Reply(true, nil)
		case "exec", "subsystem":
			var arg struct{ Value string }
			if started || ssh.Unmarshal(req.Payload, &arg) != nil {
				req.Reply(false, nil)
				continue
			}
			if req.Type == "subsystem" && arg.Value != "sftp" {
				req.Reply(false, nil)
				continue
			}
			started = true
			req.Reply(true, nil)
			if req.Type == "subsystem" && u.OS == nil {
				go serveSFTP(ch)
				continue
			}
			argv := []string{"/bin/sh", "-c", arg.Value}
			if req.Type == "subsystem" {
				argv = []string{"/usr/lib/openssh/sftp-server"}
			}
			cmd, err := command(argv, u)
			if err != nil {
				fmt.Fprintf(ch.Stderr(), "testserver: %v\n", err)
				sendExit(ch, 255)
				ch.Close()
				continue
			}
			if err := startCmd(ch, cmd); err != nil {
				fmt.Fprintf(ch.Stderr(), "testserver: %v\n", err)
				sendExit(ch, 127)
				ch.Close()
				continue
			}
			mu.Lock()
			proc = cmd
			mu.Unlock()
			go func() {
				waitCmd(ch, cmd)
				close(exited)
			}()
		case "signal":
			var sig struct{ Name string }
			ssh.Unmarshal(req.Payload, &sig)
			mu.Lock()
			if proc != nil {
				proc.Process.Signal(signalByName(sig.Name))
			}
			mu.Unlock()
			if req.WantReply {
				req.Reply(true, nil)
			}
		default:
			req.Reply(false, nil)
		}
	}
	// The client closed the channel: end what it started, if still running.
	mu.Lock()
	defer mu.Unlock()
	if proc != nil {
		select {
		case <-exited:
		default:
			syscall.Kill(-proc.Process.Pid, syscall.SIGKILL)
		}
	}
}

func serveSFTP(ch ssh.Channel) {
	defer ch.Close()
	srv, err := sftp.NewServer(ch)
	if err != nil {
		return
	}
	srv.Serve()
	srv.Close()
}

// command prepares argv to run as u, with a login-like environment.
func command(argv []string, u User) (*exec.Cmd, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	name, home := u.Name, os.Getenv("HOME")
	if u.OS != nil {
		uid, err1 := strconv.ParseUint(u.OS.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.OS.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		var groups []uint32
		if ids, err := u.OS.GroupIds(); err == nil {
			for _, g := range ids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					groups = append(groups, uint32(n))
				}
			}
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
		name, home = u.OS.Username, u.OS.HomeDir
	}
	if home == "" {
		home = "/"
	}
	cmd.Dir = home
	cmd.Env = []string{
		"HOME=" + home, "USER=" + name, "LOGNAME=" + name, "SHELL=/bin/sh", "LANG=C.UTF-8",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	return cmd, nil
}

// startCmd wires the channel to the process and starts it.
func startCmd(ch ssh.Channel, cmd *exec.Cmd) error {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	return nil
}

// waitCmd waits for the process and reports its exit on the channel.
func waitCmd(ch ssh.Channel, cmd *exec.Cmd) {
	defer ch.Close()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		sendExit(ch, 0)
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			sendSignal(ch, ws.Signal())
			return
		}
		sendExit(ch, uint32(ee.ExitCode()))
	default:
		sendExit(ch, 255)
	}
}

func sendExit(ch ssh.Channel, code uint32) {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, code)
	ch.SendRequest("exit-status", false, b)
}

func sendSignal(ch ssh.Channel, sig syscall.Signal) {
	ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
		Signal     string
		CoreDumped bool
		Message    string
		Lang       string
	}{Signal: signalName(sig)}))
}

// signalName and signalByName map the RFC 4254 names this server handles.
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGQUIT:
		return "QUIT"
	}
	return "KILL"
}

func signalByName(n string) syscall.Signal {
	switch n {
	case "HUP":
		return syscall.SIGHUP
	case "INT":
		return syscall.SIGINT
	case "KILL":
		return syscall.SIGKILL
	case "QUIT":
		return syscall.SIGQUIT
	}
	return syscall.SIGTERM
}

// forward connects a direct-tcpip channel through Options.Forward.
func (s *Server) forward(nc ssh.NewChannel) {
	if s.opts.Forward == nil {
		nc.Reject(ssh.Prohibited, "forwarding is off")
		return
	}
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	target, err := s.opts.Forward(net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		target.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		io.Copy(target, ch)
		target.Close()
	}()
	go func() {
		defer wg.Done()
		io.Copy(ch, target)
		ch.Close()
	}()
	wg.Wait()
}
