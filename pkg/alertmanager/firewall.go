package alertmanager

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	"github.com/prometheus/alertmanager/notify"

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

// checkHost applies the firewall to every address host resolves to, for a
// connection to port the dialer does not make itself.
func (d *firewallDialer) checkHost(ctx context.Context, host, port string) error {
	l := d.limits()
	if !l.AlertmanagerReceiversBlockPrivateAddresses && len(l.AlertmanagerReceiversBlockCIDRNetworks) == 0 {
		return nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("receiver host %q refused by the receivers firewall: resolving it: %w", host, err)
	}
	for _, a := range addrs {
		if err := d.control("tcp", net.JoinHostPort(a.Unmap().String(), port), nil); err != nil {
			return err
		}
	}
	return nil
}

// firewalledEmail is an email integration behind the receivers firewall.
// Alertmanager's email notifier dials its smarthost itself, not through
// the HTTP client options: its addresses are checked before each send (a
// DNS answer that changes between the check and the connection is not).
type firewalledEmail struct {
	upstream  notify.Integration
	smarthost amcommoncfg.HostPort
	firewall  *firewallDialer
}

func guardEmail(in notify.Integration, rcv config.Receiver, fw *firewallDialer) notify.Integration {
	if in.Name() != "email" || in.Index() >= len(rcv.EmailConfigs) {
		return in
	}
	n := &firewalledEmail{upstream: in, smarthost: rcv.EmailConfigs[in.Index()].Smarthost, firewall: fw}
	return notify.NewIntegration(n, &n.upstream, in.Name(), in.Index(), rcv.Name)
}

func (n *firewalledEmail) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	if err := n.firewall.checkHost(ctx, n.smarthost.Host, n.smarthost.Port); err != nil {
		return notify.Unrecoverable(err, notify.DefaultReason)
	}
	return n.upstream.Notify(ctx, alerts...)
}
