// Command probeserver is a stand-in component for the agent's tests: an
// HTTPS server that requires a client certificate signed by -ca and answers
// GET /health with -status. GET /exit?code=N makes it exit with N.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	ca := flag.String("ca", "", "CA that signs client certificates")
	cert := flag.String("cert", "", "server certificate")
	key := flag.String("key", "", "server key")
	status := flag.Int("status", http.StatusOK, "status of /health")
	flag.Parse()

	pem, err := os.ReadFile(*ca)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		log.Fatal("no CA certificate in ", *ca)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(*status)
		fmt.Fprintf(w, "status %d for %s\n", *status, r.TLS.PeerCertificates[0].Subject.CommonName)
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Println("exit requested, code", code)
		go func() { time.Sleep(50 * time.Millisecond); os.Exit(code) }()
	})
	srv := &http.Server{
		Addr:    *addr,
		Handler: mux,
		TLSConfig: &tls.Config{
			ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs:  pool,
		},
		ReadHeaderTimeout: 5 * time.Second,
	}
	fmt.Println("probeserver listening on", *addr)
	log.Fatal(srv.ListenAndServeTLS(*cert, *key))
}
