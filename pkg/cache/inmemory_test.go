package cache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestInMemoryBoundedInBytes(t *testing.T) {
	val := make([]byte, 1000)
	one := (&entry{key: "k000", val: val}).size()
	c := NewInMemory("test", 3*one, 0)
	var evicted []string
	c.OnEvict(func(key string, _ int64) { evicted = append(evicted, key) })
	for i := range 3 {
		if !c.Set(fmt.Sprintf("k%03d", i), val, 0) {
			t.Fatalf("item %d did not fit", i)
		}
	}
	// Reading k000 makes k001 the least recently used.
	if _, ok := c.Get("k000"); !ok {
		t.Fatal("k000 missing")
	}
	c.Set("k003", val, 0)
	if len(evicted) != 1 || evicted[0] != "k001" {
		t.Fatalf("evicted %v, want [k001]", evicted)
	}
	if c.Size() > 3*one || c.Len() != 3 {
		t.Fatalf("size %d of %d, %d items", c.Size(), 3*one, c.Len())
	}
	if c.Set("big", make([]byte, 3*one), 0) {
		t.Fatal("an item larger than the cache was stored")
	}
	got := c.Fetch(context.Background(), []string{"k000", "k001", "k002", "k003"})
	if len(got) != 3 || got["k001"] != nil {
		t.Fatalf("fetched %d items", len(got))
	}
}

func TestInMemoryTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewInMemory("test", 1<<20, 0)
	c.now = func() time.Time { return now }
	c.Set("short", []byte("v"), time.Minute)
	c.Set("forever", []byte("v"), 0)
	now = now.Add(time.Minute)
	if _, ok := c.Get("short"); ok {
		t.Fatal("expired item returned")
	}
	if _, ok := c.Get("forever"); !ok {
		t.Fatal("item without TTL expired")
	}
	if c.Len() != 1 {
		t.Fatalf("%d items left, want 1", c.Len())
	}
}
