package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// parseConnectTarget parses a CONNECT request target, which must be in
// authority form (RFC 9110 section 9.3.6): host:port, the host a DNS name
// or an IP address (IPv6 in brackets), the port a number from 1 to 65535.
// It returns the target as host:port.
func parseConnectTarget(target string) (string, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "", fmt.Errorf("CONNECT target %q is not host:port", target)
	}
	if len(port) == 0 || len(port) > 5 {
		return "", fmt.Errorf("CONNECT target %q: port %q is not a number from 1 to 65535", target, port)
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", fmt.Errorf("CONNECT target %q: port %q is not a number from 1 to 65535", target, port)
		}
	}
	if n, _ := strconv.Atoi(port); n < 1 || n > 65535 {
		return "", fmt.Errorf("CONNECT target %q: port %q is not a number from 1 to 65535", target, port)
	}
	if host == "" {
		return "", fmt.Errorf("CONNECT target %q has no host", target)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("CONNECT target %q: an IPv6 zone is not allowed", target)
		}
		if ip.Is6() && !(len(target) > 0 && target[0] == '[') {
			return "", fmt.Errorf("CONNECT target %q: an IPv6 address needs brackets", target)
		}
		return net.JoinHostPort(ip.String(), port), nil
	}
	if !validHostName(host) {
		return "", fmt.Errorf("CONNECT target %q: host %q is not a DNS name or IP address", target, host)
	}
	return net.JoinHostPort(host, port), nil
}

// validHostName reports whether h is a DNS name: dot-separated labels of
// letters, digits, '-' and '_', each 1 to 63 bytes, 253 bytes in all, with
// an optional final dot.
func validHostName(h string) bool {
	if len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		if label++; label > 63 {
			return false
		}
	}
	return label > 0
}
