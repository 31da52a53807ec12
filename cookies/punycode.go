package cookies

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// This file turns a host name with non-ASCII labels into its A-label form
// ("bücher.example" to "xn--bcher-kva.example"), with the Punycode of
// RFC 3492. Like net/http/cookiejar, and unlike a full IDNA library, it does
// no Unicode mapping beyond the lower-casing its caller did.

// Punycode parameters, RFC 3492 section 5.
const (
	pcBase        = 36
	pcTMin        = 1
	pcTMax        = 26
	pcSkew        = 38
	pcDamp        = 700
	pcInitialBias = 72
	pcInitialN    = 0x80
)

var errPunycodeOverflow = errors.New("cookies: punycode overflow")

// toASCII encodes each non-ASCII label of the valid UTF-8 name s as "xn--"
// and its Punycode.
func toASCII(s string) (string, error) {
	var b strings.Builder
	for i, label := range strings.Split(s, ".") {
		if i > 0 {
			b.WriteByte('.')
		}
		if isASCII(label) {
			b.WriteString(label)
			continue
		}
		b.WriteString("xn--")
		if err := punyEncode(&b, label); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// punyEncode writes the Punycode of label to b (RFC 3492 section 6.3).
func punyEncode(b *strings.Builder, label string) error {
	runes := []rune(label)
	basic := 0
	for _, r := range runes {
		if r < pcInitialN {
			b.WriteByte(byte(r))
			basic++
		}
	}
	if basic > 0 {
		b.WriteByte('-')
	}
	const maxInt = 1<<31 - 1 // overflow bound, as with 32-bit arithmetic
	n, delta, bias := pcInitialN, 0, pcInitialBias
	for h := basic; h < len(runes); {
		m := rune(maxInt)
		for _, r := range runes {
			if r >= rune(n) && r < m {
				m = r
			}
		}
		if int(m)-n > (maxInt-delta)/(h+1) {
			return errPunycodeOverflow
		}
		delta += (int(m) - n) * (h + 1)
		n = int(m)
		for _, r := range runes {
			if int(r) < n {
				if delta++; delta > maxInt {
					return errPunycodeOverflow
				}
				continue
			}
			if int(r) > n {
				continue
			}
			q := delta
			for k := pcBase; ; k += pcBase {
				t := min(max(k-bias, pcTMin), pcTMax)
				if q < t {
					break
				}
				b.WriteByte(punyDigit(t + (q-t)%(pcBase-t)))
				q = (q - t) / (pcBase - t)
			}
			b.WriteByte(punyDigit(q))
			bias = punyAdapt(delta, h+1, h == basic)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return nil
}

func punyDigit(d int) byte {
	if d < 26 {
		return byte('a' + d)
	}
	return byte('0' + d - 26)
}

// punyAdapt is the bias adaptation of RFC 3492 section 6.1.
func punyAdapt(delta, numPoints int, first bool) int {
	if first {
		delta /= pcDamp
	} else {
		delta /= 2
	}
	delta += delta / numPoints
	k := 0
	for delta > (pcBase-pcTMin)*pcTMax/2 {
		delta /= pcBase - pcTMin
		k += pcBase
	}
	return k + (pcBase-pcTMin+1)*delta/(delta+pcSkew)
}
