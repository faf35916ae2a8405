package alertmanager

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// firewallDialer connects a tenant's receivers, refusing the addresses its
// -alertmanager.receivers-firewall-block-* limits block, as Cortex's
// firewall dialer does. The check runs on the address being connected to,
// after DNS resolution (net.Dialer's Control), so a name that resolves to a
// blocked address, or starts to, is refused too. The limits are read at
// each connection: a changed override applies without a restart.
type firewallDialer struct {
	limits func() *validation.Limits
	dialer net.Dialer
}

func newFirewallDialer(limits func() *validation.Limits) *firewallDialer {
	d := &firewallDialer{limits: limits}
	d.dialer.Control = d.control
	return d
}

// DialContext is a commoncfg.DialContextFunc.
func (d *firewallDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return d.dialer.DialContext(ctx, network, address)
}

func (d *firewallDialer) control(_, address string, _ syscall.RawConn) error {
	l := d.limits()
	if !l.AlertmanagerReceiversBlockPrivateAddresses && len(l.AlertmanagerReceiversBlockCIDRNetworks) == 0 {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("receiver address %q refused by the receivers firewall: not an IP address and port", address)
	}
	ip := ap.Addr().Unmap()
	if l.AlertmanagerReceiversBlockPrivateAddresses && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified()) {
		return fmt.Errorf("receiver address %s is blocked: private, loopback and link-local addresses are refused (-alertmanager.receivers-firewall-block-private-addresses)", ip)
	}
	for _, cidr := range l.AlertmanagerReceiversBlockCIDRNetworks {
		if cidr.Value.Contains(net.IP(ip.AsSlice())) {
			return fmt.Errorf("receiver address %s is blocked: it is in %s (-alertmanager.receivers-firewall-block-cidr-networks)", ip, cidr.Value)
		}
	}
	return nil
}
