// Package promqlcheck refuses PromQL expressions that are too long or
// nest too deeply, before the Prometheus parser sees them.
//
// The parser cannot be canceled, and its time grows with the square of
// the nesting of an expression: 20,000 nested parentheses, unary minus
// signs or chained binary operators take seconds of CPU to parse, and
// then as long again for the engine to walk. Check is one linear scan of
// the text that bounds the depth of the tree the parser would build.
package promqlcheck

import (
	"fmt"
	"strings"
)

// Flag names of the per-tenant limits Check enforces (pkg/util/validation
// registers them).
const (
	SizeFlag  = "query-frontend.max-query-expression-size-bytes"
	DepthFlag = "query-frontend.max-query-expression-depth"
)

// TooLongError is an expression over the size limit.
type TooLongError struct {
	What  string // which parameter: "query" or "match[]"
	Bytes int
	Limit int
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("the %s expression is %d bytes long, over the limit of %d bytes (-%s)", e.What, e.Bytes, e.Limit, SizeFlag)
}

// TooDeepError is an expression that nests deeper than the depth limit.
type TooDeepError struct {
	What   string
	Offset int // byte offset of the token that went past the limit
	Limit  int
}

func (e *TooDeepError) Error() string {
	return fmt.Sprintf("the %s expression nests deeper than the limit of %d levels at byte %d (-%s): every bracket, unary operator and binary operator in a chain adds a level", e.What, e.Limit, e.Offset, DepthFlag)
}

// Check returns a *TooLongError when expr is longer than maxBytes, or a
// *TooDeepError when Depth finds it deeper than maxDepth. A limit of 0
// means no limit. what names the parameter in the errors.
func Check(what, expr string, maxBytes, maxDepth int) error {
	if maxBytes > 0 && len(expr) > maxBytes {
		return &TooLongError{What: what, Bytes: len(expr), Limit: maxBytes}
	}
	if maxDepth <= 0 {
		return nil
	}
	if d, off := depth(expr, maxDepth); d > maxDepth {
		return &TooDeepError{What: what, Offset: off, Limit: maxDepth}
	}
	return nil
}

// Depth returns an upper bound of the depth of the syntax tree of expr.
// Within a pair of brackets, n operators (binary or unary) make a tree at
// most n levels deep over the deepest operand, and each pair of brackets
// adds a level; a subquery's brackets wrap the group before them. String
// literals and comments do not count, nor do the matcher operators
// (= != =~ !~) inside braces.
func Depth(expr string) int {
	d, _ := depth(expr, -1)
	return d
}

// frame is an open bracket: its operators so far and its deepest operand.
type frame struct {
	ops, deepest int
	braces       bool
}

// depth scans expr and returns its Depth, stopping as soon as the depth is
// known to exceed stopAbove (when stopAbove >= 0), so the scan of a
// hostile expression ends early and its stack stays small. offset is
// where the scan was when the depth went over, or ended.
func depth(expr string, stopAbove int) (d, offset int) {
	var (
		buf   [64]frame // most expressions nest less: no allocation
		stack = buf[:0]
		top   frame // the expression outside any bracket
		// open is sum(1 + ops) over the open frames plus top.ops: what
		// the tree's depth is at least, from what the scan has seen.
		open int
		// closed is the depth of the group that just closed when it is
		// the last token, which a subquery's brackets wrap.
		closed int
	)
	over := func(n int) bool { return stopAbove >= 0 && n > stopAbove }
	cur := func() *frame {
		if len(stack) == 0 {
			return &top
		}
		return &stack[len(stack)-1]
	}
	operator := func() bool {
		cur().ops++
		open++
		return over(open)
	}
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		lastClosed := closed
		closed = 0
		switch c {
		case ' ', '\t', '\n', '\r':
			closed = lastClosed
		case '"', '\'', '`':
			i = skipString(expr, i)
		case '#':
			if nl := strings.IndexByte(expr[i:], '\n'); nl >= 0 {
				i += nl
			} else {
				i = len(expr)
			}
		case '(', '[', '{':
			f := frame{braces: c == '{'}
			if c == '[' {
				f.deepest = lastClosed
			}
			stack = append(stack, f)
			open++
			if over(open + f.deepest) {
				return open + f.deepest, i
			}
		case ')', ']', '}':
			n := len(stack)
			if n == 0 {
				continue // unbalanced: the parser refuses it
			}
			f := stack[n-1]
			stack = stack[:n-1]
			open -= 1 + f.ops
			v := 1 + f.ops + f.deepest
			p := cur()
			p.deepest = max(p.deepest, v)
			closed = v
			if over(open + v) {
				return open + v, i
			}
		case '+', '-', '*', '/', '%', '^':
			if !cur().braces && operator() {
				return open, i
			}
		case '=', '!', '<', '>':
			// One level for == != <= >= < >; inside braces these
			// are label matchers, not operators.
			if i+1 < len(expr) && (expr[i+1] == '=' || expr[i+1] == '~') {
				i++
			}
			if !cur().braces && operator() {
				return open, i
			}
		default:
			if isIdentStart(c) {
				j := i + 1
				for j < len(expr) && isIdentChar(expr[j]) {
					j++
				}
				if !cur().braces && isKeywordOperator(expr[i:j]) && operator() {
					return open, i
				}
				i = j - 1
			}
		}
	}
	// Brackets left open (which the parser refuses) close at the end.
	for n := len(stack); n > 0; n-- {
		f := stack[n-1]
		stack = stack[:n-1]
		p := cur()
		p.deepest = max(p.deepest, 1+f.ops+f.deepest)
	}
	return top.ops + top.deepest, len(expr)
}

// skipString returns the offset of the closing quote of the string
// literal opening at i, or the end of expr for one left open (which the
// parser refuses).
func skipString(expr string, i int) int {
	q := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch expr[j] {
		case '\\':
			if q != '`' {
				j++
			}
		case q:
			return j
		}
	}
	return len(expr)
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// isKeywordOperator reports the binary operators spelled as words, which
// PromQL's lexer matches regardless of case.
func isKeywordOperator(w string) bool {
	switch len(w) {
	case 2:
		return strings.EqualFold(w, "or")
	case 3:
		return strings.EqualFold(w, "and")
	case 5:
		return strings.EqualFold(w, "atan2")
	case 6:
		return strings.EqualFold(w, "unless")
	}
	return false
}
