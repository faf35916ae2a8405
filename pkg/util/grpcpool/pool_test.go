package grpcpool

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// One connection per address, kept until its address leaves.
func TestPoolKeepsOneConnectionPerAddress(t *testing.T) {
	p := New("test", grpc.WithTransportCredentials(insecure.NewCredentials()))
	a, err := p.Conn("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := p.Conn("127.0.0.1:1"); again != a {
		t.Fatal("a second Conn for the same address dialled a new connection")
	}
	b, err := p.Conn("127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	p.Retain([]string{"127.0.0.1:2"})
	if a.GetState() != connectivity.Shutdown || b.GetState() == connectivity.Shutdown {
		t.Fatalf("after Retain of the second address: first %s, second %s", a.GetState(), b.GetState())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if b.GetState() != connectivity.Shutdown {
		t.Fatalf("after Close: %s", b.GetState())
	}
	if _, err := p.Conn("bad\x00addr"); err == nil || err.Error()[:26] != "test client for bad\x00addr: " {
		t.Fatalf("dial error %v, want it to name the peer kind and address", err)
	}
}
