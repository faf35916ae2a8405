package scheduler_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/querier/worker"
	"github.com/cortex-tls/cortex/pkg/scheduler"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestShuffleShardOfQueriers: with -frontend.max-queriers-per-tenant=1 of
// three connected queriers, every query of a tenant runs on one querier.
func TestShuffleShardOfQueriers(t *testing.T) {
	var mu sync.Mutex
	ranOn := map[string]map[string]int{} // tenant -> querier -> queries
	record := func(querier string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			tn := r.Header.Get("X-Scope-OrgID")
			mu.Lock()
			if ranOn[tn] == nil {
				ranOn[tn] = map[string]int{}
			}
			ranOn[tn][querier]++
			mu.Unlock()
			_, _ = fmt.Fprint(w, "ok")
		}
	}
	top := newTopology(t, record("querier-1"), scheduler.WithMaxQueriers(func(tenant string) float64 {
		if tenant == "sharded" {
			return 1
		}
		return 0
	}))
	for _, id := range []string{"querier-2", "querier-3"} {
		var wcfg worker.Config
		fs := flag.NewFlagSet("w", flag.PanicOnError)
		wcfg.RegisterFlags(fs)
		_ = fs.Parse(nil)
		wcfg.SchedulerAddress = top.schedulerAddr
		wcfg.Parallelism = 2
		wcfg.QuerierID = id
		w, err := worker.New(wcfg, nil, record(id), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		start(t, w)
	}
	testkit.Eventually(t, 10*time.Second, "three queriers connected", func() bool { return top.sched.ConnectedQuerierWorkers() == 6 })
	var wg sync.WaitGroup
	for i := range 60 {
		tn := []string{"sharded", "everywhere"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := top.front.RoundTrip(context.Background(), tn, query(tn, "/api/v1/labels")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(ranOn["sharded"]) != 1 || ranOn["sharded"][firstKey(ranOn["sharded"])] != 30 {
		t.Fatalf("the sharded tenant's 30 queries ran on %v, want one querier", ranOn["sharded"])
	}
	total := 0
	for _, n := range ranOn["everywhere"] {
		total += n
	}
	if total != 30 {
		t.Fatalf("the unsharded tenant's queries: %v", ranOn["everywhere"])
	}
}

func firstKey(m map[string]int) string {
	for k := range m {
		return k
	}
	return ""
}
