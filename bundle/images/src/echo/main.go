// Command echo is the bundled test workload (localhost/clusterctl-echo): an
// HTTP server on port 8080 that answers every request with JSON naming the
// pod that answered and the client it saw, so tests can tell which pod a
// Service routed them to and whether the source address was kept.
//
// `echo get URL` is its client: it prints the answer's body, and exits 1
// when the request fails, so `kubectl exec POD -- /echo get URL` makes a
// request from inside a pod (the image has nothing else to run). `echo
// lookup NAME` resolves a name with the pod's resolv.conf and prints its
// addresses, one a line, exiting 1 when it does not resolve.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type answer struct {
	Hostname string `json:"hostname"`
	PodIP    string `json:"pod_ip"`
	Client   string `json:"client"`
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		os.Exit(get(os.Args[2]))
	}
	if len(os.Args) == 3 && os.Args[1] == "lookup" {
		os.Exit(lookup(os.Args[2]))
	}
	hostname, _ := os.Hostname()
	podIP := os.Getenv("POD_IP")
	if podIP == "" {
		podIP = firstAddress()
	}
	addr := ":8080"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	srv := &http.Server{Addr: addr, Handler: handler(hostname, podIP), ReadHeaderTimeout: 10 * time.Second}
	// Exit 0 on SIGTERM (what the kubelet sends) once open requests end.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("clusterctl-echo: %s (pod ip %s) listening on %s", hostname, podIP, addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// handler answers every request, whatever its method and path.
func handler(hostname, podIP string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer{Hostname: hostname, PodIP: podIP, Client: r.RemoteAddr})
	})
}

// firstAddress is the first non-loopback IP of the pod's interfaces.
func firstAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// get fetches url and prints the body; 0 on a 2xx answer.
func get(url string) int {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo get:", err)
		return 1
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		fmt.Fprintln(os.Stderr, "echo get:", err)
		return 1
	}
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, "echo get:", resp.Status)
		return 1
	}
	return 0
}

// lookup prints the addresses name resolves to.
func lookup(name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
	return 0
}
