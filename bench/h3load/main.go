// h3load is an HTTP/3 load generator built on quic-go's http3 client, so
// that HTTPy's HTTP/3 can be loaded by a QUIC and HTTP/3 stack that shares
// no code with its own (quinn + h3, server and built-in generator alike).
// It opens N QUIC connections and keeps M requests in flight on each for a
// fixed time, then prints req/s and latency percentiles (JSON with -json).
// A benchmarking tool only: bench/h3-peers.mjs builds and runs it when Go
// is installed; no test depends on it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

type result struct {
	URL         string         `json:"url"`
	Connections int            `json:"connections"`
	Streams     int            `json:"streamsPerConnection"`
	Duration    float64        `json:"duration"`
	Requests    int            `json:"requests"`
	Errors      int            `json:"errors"`
	ErrorKinds  map[string]int `json:"errorKinds,omitempty"`
	// The first message seen of each kind, to tell why requests failed.
	FirstErrors       map[string]string `json:"firstErrors,omitempty"`
	Statuses          map[int]int       `json:"statuses"`
	RequestsPerSecond float64           `json:"requestsPerSecond"`
	// Latencies in milliseconds, over the requests of the measured window.
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// worker is one in-flight slot: it sends a request, waits for the whole
// response, and starts the next. Each keeps its own counts (no sharing).
type worker struct {
	latencies []time.Duration
	statuses  map[int]int
	errors    map[string]int
	first     map[string]string
}

func main() {
	target := flag.String("url", "", "https:// URL to request (the UDP port of the HTTP/3 server)")
	conns := flag.Int("c", 4, "QUIC connections")
	streams := flag.Int("m", 16, "requests in flight on each connection")
	duration := flag.Float64("d", 10, "seconds measured")
	warmup := flag.Float64("warmup", 1, "seconds of load before the measured window")
	insecure := flag.Bool("insecure", false, "do not verify the server's certificate")
	caFile := flag.String("cacert", "", "PEM file of the CA that signed the server's certificate")
	timeout := flag.Float64("timeout", 5, "seconds before one request counts as failed")
	asJSON := flag.Bool("json", false, "print the result as one JSON line")
	flag.Parse()

	if err := run(*target, *conns, *streams, *duration, *warmup, *insecure, *caFile, *timeout, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "h3load:", err)
		os.Exit(2)
	}
}

func run(target string, conns, streams int, duration, warmup float64, insecure bool, caFile string, timeout float64, asJSON bool) error {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("-url must be an https:// URL, got %q", target)
	}
	if conns < 1 || streams < 1 || duration <= 0 || warmup < 0 || timeout <= 0 {
		return errors.New("-c and -m must be at least 1, -d and -timeout positive, -warmup not negative")
	}
	tlsConf := &tls.Config{InsecureSkipVerify: insecure, NextProtos: []string{http3.NextProtoH3}}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("cannot read -cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("no certificate found in %s", caFile)
		}
		tlsConf.RootCAs = pool
	} else if !insecure {
		return errors.New("give -cacert FILE or -insecure: the server's certificate must be trusted explicitly")
	}

	// One Transport per connection: a Transport keeps one QUIC connection
	// per host and multiplexes every request to that host onto it.
	transports := make([]*http3.Transport, conns)
	for i := range transports {
		transports[i] = &http3.Transport{
			TLSClientConfig: tlsConf.Clone(),
			QUICConfig:      &quic.Config{MaxIdleTimeout: 30 * time.Second, KeepAlivePeriod: 10 * time.Second},
		}
	}
	defer func() {
		for _, t := range transports {
			t.Close()
		}
	}()

	start := time.Now()
	measureFrom := start.Add(time.Duration(warmup * float64(time.Second)))
	end := measureFrom.Add(time.Duration(duration * float64(time.Second)))
	perRequest := time.Duration(timeout * float64(time.Second))

	workers := make([]*worker, conns*streams)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{statuses: map[int]int{}, errors: map[string]int{}, first: map[string]string{}}
		workers[i] = w
		tr := transports[i/streams]
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(tr, target, measureFrom, end, perRequest)
		}()
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
	if elapsed > time.Duration(duration*float64(time.Second))+perRequest {
		elapsed = time.Duration(duration * float64(time.Second))
	}

	res := result{URL: target, Connections: conns, Streams: streams, Duration: elapsed.Seconds(), Statuses: map[int]int{}, ErrorKinds: map[string]int{}, FirstErrors: map[string]string{}}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.latencies...)
		for s, n := range w.statuses {
			res.Statuses[s] += n
		}
		for k, n := range w.errors {
			res.ErrorKinds[k] += n
			res.Errors += n
		}
		for k, m := range w.first {
			if _, seen := res.FirstErrors[k]; !seen {
				res.FirstErrors[k] = m
			}
		}
	}
	res.Requests = len(all)
	res.RequestsPerSecond = float64(res.Requests) / elapsed.Seconds()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i].Microseconds()) / 1000
	}
	res.P50, res.P90, res.P99, res.P999, res.Max = pct(0.50), pct(0.90), pct(0.99), pct(0.999), pct(1)

	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("%s: %d connections x %d streams, %.1f s\n", target, conns, streams, res.Duration)
	fmt.Printf("  %d requests, %.0f req/s, %d errors %v, statuses %v\n", res.Requests, res.RequestsPerSecond, res.Errors, res.ErrorKinds, res.Statuses)
	for k, m := range res.FirstErrors {
		fmt.Printf("  first %s error: %s\n", k, m)
	}
	fmt.Printf("  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n", res.P50, res.P90, res.P99, res.P999, res.Max)
	return nil
}

// loop sends requests one after another until `end`; only those that start
// at or after `measureFrom` are counted.
func (w *worker) loop(tr *http3.Transport, target string, measureFrom, end time.Time, perRequest time.Duration) {
	for {
		began := time.Now()
		if !began.Before(end) {
			return
		}
		status, err := fetch(tr, target, perRequest)
		if began.Before(measureFrom) {
			continue
		}
		switch {
		case err != nil:
			kind := classify(err)
			if w.errors[kind] == 0 {
				w.first[kind] = err.Error()
			}
			w.errors[kind]++
		case status < 200 || status > 399:
			w.statuses[status]++
			w.errors["status"]++
		default:
			w.statuses[status]++
			w.latencies = append(w.latencies, time.Since(began))
		}
	}
}

// fetch sends one GET and reads the whole body.
func fetch(tr *http3.Transport, target string, perRequest time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), perRequest)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func classify(err error) string {
	var idle *quic.IdleTimeoutError
	var app *quic.ApplicationError
	var tr *quic.TransportError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &idle):
		return "idle-timeout"
	case errors.As(err, &app):
		return "application-error"
	case errors.As(err, &tr):
		return "transport-error"
	default:
		return "other"
	}
}
