package remotewrite

// Protocol-buffer wire primitives shared by both decoders, with the errors
// and limits of gogo's generated code.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unsafe"
)

var (
	errIntOverflow          = errors.New("proto: integer overflow")
	errInvalidLength        = errors.New("proto: negative length found during unmarshaling")
	errUnexpectedEndOfGroup = errors.New("proto: unexpected end of group")
)

// yoloString returns a string sharing b's memory.
func yoloString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// varint reads the varint at b[i:]; its fast path inlines.
func varint(b []byte, i int) (uint64, int, error) {
	if i < len(b) && b[i] < 0x80 {
		return uint64(b[i]), i + 1, nil
	}
	return varintSlow(b, i)
}

func varintSlow(b []byte, i int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, i, errIntOverflow
		}
		if i >= len(b) {
			return 0, i, io.ErrUnexpectedEOF
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i, nil
		}
	}
}

// tag reads a field key, refusing what gogo's generated code refuses.
func tag(b []byte, i int, msg string) (field int32, wireType int, next int, err error) {
	wire, next, err := varint(b, i)
	if err != nil {
		return 0, 0, next, err
	}
	field, wireType = int32(wire>>3), int(wire&0x7)
	if wireType == 4 {
		return 0, 0, next, fmt.Errorf("proto: %s: wiretype end group for non-group", msg)
	}
	if field <= 0 {
		return 0, 0, next, fmt.Errorf("proto: %s: illegal tag %d (wire type %d)", msg, field, wire)
	}
	return field, wireType, next, nil
}

// lengthDelimited reads a length prefix at b[i:] and returns the bounds of
// the bytes it announces.
func lengthDelimited(b []byte, i int) (start, end int, err error) {
	v, i, err := varint(b, i)
	if err != nil {
		return 0, 0, err
	}
	n := int(v)
	if n < 0 {
		return 0, 0, errInvalidLength
	}
	end = i + n
	if end < 0 {
		return 0, 0, errInvalidLength
	}
	if end > len(b) {
		return 0, 0, io.ErrUnexpectedEOF
	}
	return i, end, nil
}

func fixed64(b []byte, i int) (uint64, int, error) {
	if i+8 > len(b) {
		return 0, i, io.ErrUnexpectedEOF
	}
	return binary.LittleEndian.Uint64(b[i:]), i + 8, nil
}

// skipField skips the unknown field whose key starts at b[pre:], as gogo's
// skipTypes does, and returns the index after it.
func skipField(b []byte, pre int) (int, error) {
	n, err := skipTypes(b[pre:])
	if err != nil {
		return 0, err
	}
	if n < 0 || pre+n < 0 {
		return 0, errInvalidLength
	}
	if pre+n > len(b) {
		return 0, io.ErrUnexpectedEOF
	}
	return pre + n, nil
}

func skipTypes(b []byte) (int, error) {
	l, i, depth := len(b), 0, 0
	for i < l {
		var wire uint64
		var err error
		if wire, i, err = varintSlow(b, i); err != nil {
			return 0, err
		}
		switch wireType := int(wire & 0x7); wireType {
		case 0:
			if _, i, err = varintSlow(b, i); err != nil {
				return 0, err
			}
		case 1:
			i += 8
		case 2:
			var length uint64
			if length, i, err = varintSlow(b, i); err != nil {
				return 0, err
			}
			if int(length) < 0 {
				return 0, errInvalidLength
			}
			i += int(length)
		case 3:
			depth++
		case 4:
			if depth == 0 {
				return 0, errUnexpectedEndOfGroup
			}
			depth--
		case 5:
			i += 4
		default:
			return 0, fmt.Errorf("proto: illegal wireType %d", wireType)
		}
		if i < 0 {
			return 0, errInvalidLength
		}
		if depth == 0 {
			return i, nil
		}
	}
	return 0, io.ErrUnexpectedEOF
}

func wrongWireType(wt int, field string) error {
	return fmt.Errorf("proto: wrong wireType = %d for field %s", wt, field)
}
