// Command etcdload is a closed-loop load generator for etcd's v3 JSON gateway, written
// against the standard library only, so that etcd and global-kv are measured through
// the very same client (benchmarks/bench_etcd.py builds and runs it).
//
//	etcdload -endpoints http://127.0.0.1:2379,... -workload put|get|sget|lock|populate
//	         -c 16 -warmup 1s -duration 5s -keys 1000 -value-bytes 64
//
// C goroutines each issue their next request when the previous one is answered; each
// goroutine takes the endpoints in turn (round-robin, starting at its own index). put is
// POST /v3/kv/put, get is POST /v3/kv/range (linearizable, the default), sget the same
// with "serializable": true; keys and values are base64 (the proto3 JSON mapping). lock
// is a pair, POST /v3/lock/lock then /v3/lock/unlock of the key it returns, each
// goroutine on a lock name of its own and under a lease it granted first (60 s TTL,
// longer than any run), so a pair costs what etcd's recipe costs, not a lease grant.
// populate writes every key once (for the reads). One JSON line goes to stdout: the ops
// and latencies of requests that completed inside the measured window (after the
// warm-up), plus total_ops (warm-up included) and this process's CPU seconds.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

type result struct {
	Workload   string  `json:"workload"`
	Clients    int     `json:"clients"`
	Ops        int     `json:"ops"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	OpsPerS    float64 `json:"ops_per_s"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	TotalOps   int     `json:"total_ops"`
	CPUSeconds float64 `json:"cpu_s"`
	Wakeups    int64   `json:"wakeups"`
	FirstError string  `json:"first_error,omitempty"`
}

// worker's tally: latencies inside the window, errors inside it, everything completed.
type tally struct {
	lat    []time.Duration
	errors int
	total  int
	first  string
}

// cpuSeconds and wakeups (voluntary context switches) of this process, all threads.
func usage() (float64, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1, -1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, ru.Nvcsw
}

// call POSTs body to url and checks the answer: HTTP 200, no gateway error, and for
// reads a key-value in it (every key was populated).
func call(client *http.Client, url string, body []byte, wantKV bool) error {
	_, err := post(client, url, body, wantKV)
	return err
}

func post(client *http.Client, url string, body []byte, wantKV bool) ([]byte, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(resp.Body) // read to the end: the connection is kept alive
	resp.Body.Close()
	if err != nil {
		return nil, err
	} else if resp.StatusCode != http.StatusOK || bytes.Contains(data, []byte(`"error"`)) {
		return nil, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, data)
	}
	if wantKV && !bytes.Contains(data, []byte(`"kvs"`)) {
		return nil, fmt.Errorf("no key-value in the answer: %.200s", data)
	}
	return data, nil
}

// lockPair locks `name` under `lease` at url, then unlocks the key the lock returned.
func lockPair(client *http.Client, url string, name string, lease string) error {
	data, err := post(client, url+"/v3/lock/lock", []byte(fmt.Sprintf(`{"name":%q,"lease":%q}`, name, lease)), false)
	if err != nil {
		return err
	}
	var held struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(data, &held); err != nil || held.Key == "" {
		return fmt.Errorf("no key in the lock answer: %.200s", data)
	}
	return call(client, url+"/v3/lock/unlock", []byte(fmt.Sprintf(`{"key":%q}`, held.Key)), false)
}

// grantLease returns the ID (a decimal string, as the JSON mapping writes int64) of a new lease.
func grantLease(client *http.Client, url string, ttl int) (string, error) {
	data, err := post(client, url+"/v3/lease/grant", []byte(fmt.Sprintf(`{"TTL":"%d"}`, ttl)), false)
	if err != nil {
		return "", err
	}
	var granted struct {
		ID string `json:"ID"`
	}
	if err := json.Unmarshal(data, &granted); err != nil || granted.ID == "" {
		return "", fmt.Errorf("no lease ID in the grant answer: %.200s", data)
	}
	return granted.ID, nil
}

func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	k := int(q*float64(len(sorted)-1) + 0.5)
	return float64(sorted[k]) / 1e6
}

func main() {
	endpoints := flag.String("endpoints", "", "client URLs, comma-separated")
	workload := flag.String("workload", "put", "put | get | sget | lock | populate")
	c := flag.Int("c", 1, "concurrent clients (goroutines)")
	warmup := flag.Duration("warmup", time.Second, "warm-up, not measured")
	duration := flag.Duration("duration", 5*time.Second, "measured window")
	keys := flag.Int("keys", 1000, "key space")
	valueBytes := flag.Int("value-bytes", 64, "value size")
	flag.Parse()
	urls := strings.Split(*endpoints, ",")
	if *endpoints == "" || *c < 1 || *keys < 1 {
		fmt.Fprintln(os.Stderr, "etcdload: -endpoints, -c >= 1 and -keys >= 1 are required")
		os.Exit(2)
	}
	path, wantKV := "/v3/kv/range", true
	if *workload == "put" || *workload == "populate" {
		path, wantKV = "/v3/kv/put", false
	} else if *workload != "get" && *workload != "sget" && *workload != "lock" {
		fmt.Fprintf(os.Stderr, "etcdload: unknown workload %q\n", *workload)
		os.Exit(2)
	}

	// Every request body, made once: the measured loop only sends and reads.
	value := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("v"), *valueBytes))
	bodies := make([][]byte, *keys)
	for i := range bodies {
		key := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("bench/%05d", i)))
		switch *workload {
		case "put", "populate":
			bodies[i] = []byte(fmt.Sprintf(`{"key":%q,"value":%q}`, key, value))
		case "get":
			bodies[i] = []byte(fmt.Sprintf(`{"key":%q}`, key))
		case "sget":
			bodies[i] = []byte(fmt.Sprintf(`{"key":%q,"serializable":true}`, key))
		}
	}
	// Keep-alive: up to C idle connections per endpoint (no overall limit), no proxy.
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: *c + 4, DisableCompression: true}
	client := &http.Client{Timeout: 10 * time.Second, Transport: transport}

	if *workload == "populate" {
		*warmup, *duration = 0, 0
	}
	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*duration)
	tallies := make([]tally, *c)
	var wg sync.WaitGroup
	for g := 0; g < *c; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			t := &tallies[g]
			rng := rand.New(rand.NewSource(int64(g) + 1))
			next := g
			lockName := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("bench-lock/%d", g)))
			var lease string
			if *workload == "lock" {
				var err error
				if lease, err = grantLease(client, urls[g%len(urls)], 60); err != nil {
					t.first, t.errors = err.Error(), 1
					return
				}
			}
			for op := 0; ; op++ {
				var k int
				if *workload == "populate" {
					k = g + op**c // each key once, split over the goroutines
					if k >= *keys {
						return
					}
				} else if k = rng.Intn(*keys); !time.Now().Before(end) {
					return
				}
				url := urls[next%len(urls)] + path
				next++
				t0 := time.Now()
				var err error
				if *workload == "lock" {
					err = lockPair(client, urls[(next-1)%len(urls)], lockName, lease)
				} else {
					err = call(client, url, bodies[k], wantKV)
				}
				t1 := time.Now()
				inWindow := *workload == "populate" || (!t1.Before(measureFrom) && t1.Before(end))
				if err != nil {
					if t.first == "" {
						t.first = err.Error()
					}
					if inWindow {
						t.errors++
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				t.total++
				if inWindow {
					t.lat = append(t.lat, t1.Sub(t0))
				}
			}
		}(g)
	}
	wg.Wait()

	r := result{Workload: *workload, Clients: *c, Seconds: duration.Seconds()}
	r.CPUSeconds, r.Wakeups = usage()
	var all []time.Duration
	for _, t := range tallies {
		all = append(all, t.lat...)
		r.Errors += t.errors
		r.TotalOps += t.total
		if r.FirstError == "" {
			r.FirstError = t.first
		}
	}
	if *workload == "populate" {
		r.Seconds = time.Since(start).Seconds()
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r.Ops = len(all)
	r.OpsPerS = float64(r.Ops) / r.Seconds
	r.P50, r.P99 = percentile(all, 0.50), percentile(all, 0.99)
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if r.Errors > 0 && *workload == "populate" {
		os.Exit(1)
	}
}
