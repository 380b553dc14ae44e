package xentest

import (
	"slices"
	"strconv"
	"strings"

	"github.com/gopvgrub/gopvgrub/xen"
)

// This file is the simulated xenstored's database: a tree of nodes with
// values and permissions, operations as xenstored performs them, and
// transactions. Errors are the errno names xenstored sends on the wire.

type errName string

const (
	eOK       errName = ""
	eINVAL    errName = "EINVAL"
	eACCES    errName = "EACCES"
	eEXIST    errName = "EEXIST"
	eNOENT    errName = "ENOENT"
	eNOSPC    errName = "ENOSPC"
	eAGAIN    errName = "EAGAIN"
	eE2BIG    errName = "E2BIG"
	eQUOTA    errName = "EQUOTA"
	eISCONN   errName = "EISCONN"
	eNOTEMPTY errName = "ENOTEMPTY"
)

// perm is one permission entry: 'n', 'r', 'w' or 'b' for a domain.
type perm struct {
	dom    xen.DomID
	access byte
}

func (p perm) String() string { return string(rune(p.access)) + strconv.Itoa(int(p.dom)) }

func parsePerm(s string) (perm, bool) {
	if len(s) < 2 || !strings.ContainsRune("nrwb", rune(s[0])) {
		return perm{}, false
	}
	d, err := strconv.ParseUint(s[1:], 10, 16)
	if err != nil {
		return perm{}, false
	}
	return perm{xen.DomID(d), s[0]}, true
}

type node struct {
	value    []byte
	perms    []perm // perms[0]: owner and default access
	children map[string]*node
	gen      uint64 // last change of value, perms or the set of children
	owner    xen.DomID
}

func (n *node) clone() *node {
	c := &node{value: n.value, perms: n.perms, gen: n.gen, owner: n.owner}
	if len(n.children) > 0 {
		c.children = make(map[string]*node, len(n.children))
		for k, v := range n.children {
			c.children[k] = v.clone()
		}
	}
	return c
}

func (n *node) count() int {
	c := 1
	for _, ch := range n.children {
		c += ch.count()
	}
	return c
}

// tree is the database, or a transaction's private copy of it.
type tree struct {
	root *node
	gen  *uint64 // shared counter, bumped for every change
}

func newTree(gen *uint64) *tree {
	return &tree{root: &node{perms: []perm{{0, 'n'}}}, gen: gen}
}

// components splits an absolute canonical path; "/" has none.
func components(path string) []string {
	if path == "/" {
		return nil
	}
	return strings.Split(path[1:], "/")
}

func parentOf(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

func baseOf(path string) string { return path[strings.LastIndexByte(path, '/')+1:] }

func (t *tree) lookup(path string) *node {
	n := t.root
	for _, c := range components(path) {
		n = n.children[c]
		if n == nil {
			return nil
		}
	}
	return n
}

// nearest returns the node at path or, if missing, its closest existing
// ancestor, with that ancestor's path.
func (t *tree) nearest(path string) (*node, string) {
	n, at := t.root, "/"
	for _, c := range components(path) {
		ch := n.children[c]
		if ch == nil {
			return n, at
		}
		n = ch
		if at == "/" {
			at = "/" + c
		} else {
			at += "/" + c
		}
	}
	return n, at
}

func (t *tree) bump(n *node) {
	*t.gen++
	n.gen = *t.gen
}

// access reports whether dom may read (or write) node n, following
// xenstored: dom0 may do everything, the owner too, anyone else gets
// its own entry or the default in perms[0].
func access(n *node, dom xen.DomID, write bool) bool {
	if dom == 0 || len(n.perms) == 0 || n.perms[0].dom == dom {
		return true
	}
	a := n.perms[0].access
	for _, p := range n.perms[1:] {
		if p.dom == dom {
			a = p.access
			break
		}
	}
	if write {
		return a == 'w' || a == 'b'
	}
	return a == 'r' || a == 'b'
}

// limits are the quotas the daemon enforces.
type limits struct {
	maxValue int // bytes per value; 0: only the payload limit
	maxNodes int // nodes owned per domain; 0: unlimited
}

func (t *tree) owned(dom xen.DomID) int {
	var walk func(n *node) int
	walk = func(n *node) int {
		c := 0
		if n.owner == dom {
			c = 1
		}
		for _, ch := range n.children {
			c += walk(ch)
		}
		return c
	}
	return walk(t.root)
}

// create makes the missing nodes down to path for dom, inheriting
// permissions from the parent with dom as the new owner (as xenstored
// does for unprivileged creators). It returns the created paths.
func (t *tree) create(dom xen.DomID, path string, lim limits) ([]string, errName) {
	n, at := t.nearest(path)
	if at == path {
		return nil, eOK
	}
	if !access(n, dom, true) {
		return nil, eACCES
	}
	rest := components(path)[len(components(at)):]
	if lim.maxNodes > 0 && dom != 0 && t.owned(dom)+len(rest) > lim.maxNodes {
		return nil, eQUOTA
	}
	var created []string
	for _, c := range rest {
		perms := n.perms
		if dom != 0 {
			perms = append([]perm{{dom, n.perms[0].access}}, n.perms[1:]...)
		}
		ch := &node{perms: perms, owner: dom}
		if n.children == nil {
			n.children = map[string]*node{}
		}
		n.children[c] = ch
		t.bump(n)
		t.bump(ch)
		if at == "/" {
			at = "/" + c
		} else {
			at += "/" + c
		}
		created = append(created, at)
		n = ch
	}
	return created, eOK
}

func (t *tree) read(dom xen.DomID, path string) ([]byte, errName) {
	n := t.lookup(path)
	if n == nil {
		return nil, eNOENT
	}
	if !access(n, dom, false) {
		return nil, eACCES
	}
	return n.value, eOK
}

func (t *tree) write(dom xen.DomID, path string, value []byte, lim limits) errName {
	if lim.maxValue > 0 && len(value) > lim.maxValue {
		return eE2BIG
	}
	if n := t.lookup(path); n != nil && !access(n, dom, true) {
		return eACCES
	}
	if _, e := t.create(dom, path, lim); e != eOK {
		return e
	}
	n := t.lookup(path)
	n.value = slices.Clone(value)
	t.bump(n)
	return eOK
}

func (t *tree) mkdir(dom xen.DomID, path string, lim limits) errName {
	if n := t.lookup(path); n != nil {
		return eOK
	}
	_, e := t.create(dom, path, lim)
	return e
}

// rm removes path and everything below. A missing node is fine if its
// parent exists (xenstore.txt).
func (t *tree) rm(dom xen.DomID, path string) errName {
	if path == "/" {
		return eINVAL
	}
	parent := t.lookup(parentOf(path))
	if parent == nil {
		return eNOENT
	}
	n := parent.children[baseOf(path)]
	if n == nil {
		return eOK
	}
	if !access(n, dom, true) {
		return eACCES
	}
	delete(parent.children, baseOf(path))
	t.bump(parent)
	return eOK
}

func (t *tree) directory(dom xen.DomID, path string) ([]string, errName) {
	n := t.lookup(path)
	if n == nil {
		return nil, eNOENT
	}
	if !access(n, dom, false) {
		return nil, eACCES
	}
	names := make([]string, 0, len(n.children))
	for k := range n.children {
		names = append(names, k)
	}
	slices.Sort(names)
	return names, eOK
}

func (t *tree) getPerms(dom xen.DomID, path string) ([]perm, errName) {
	n := t.lookup(path)
	if n == nil {
		return nil, eNOENT
	}
	if !access(n, dom, false) {
		return nil, eACCES
	}
	return n.perms, eOK
}

func (t *tree) setPerms(dom xen.DomID, path string, perms []perm) errName {
	n := t.lookup(path)
	if n == nil {
		return eNOENT
	}
	if dom != 0 && n.perms[0].dom != dom {
		return eACCES
	}
	n.perms = slices.Clone(perms)
	n.owner = perms[0].dom
	t.bump(n)
	return eOK
}

// validPath checks an absolute path as xenstored does: allowed
// characters, no empty components, length limit.
func validPath(p string) bool {
	if len(p) == 0 || len(p) > xen.XenstoreAbsPathMax || p[0] != '/' {
		return false
	}
	if p == "/" {
		return true
	}
	if p[len(p)-1] == '/' || strings.Contains(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-/_@", c) >= 0) {
			return false
		}
	}
	return true
}

// canonical resolves a path sent by dom: relative paths live under
// /local/domain/<dom>.
func canonical(dom xen.DomID, p string) (string, bool) {
	if p == "" {
		return "", false
	}
	if p[0] != '/' {
		if len(p) > xen.XenstoreRelPathMax {
			return "", false
		}
		p = domainPath(dom) + "/" + p
	}
	return p, validPath(p)
}

func domainPath(dom xen.DomID) string { return "/local/domain/" + strconv.Itoa(int(dom)) }

// isUnder reports whether path is wpath or below it.
func isUnder(path, wpath string) bool {
	return path == wpath || wpath == "/" || strings.HasPrefix(path, wpath) && len(path) > len(wpath) && path[len(wpath)] == '/'
}

// ---- transactions ----

type txOp struct {
	kind  int // opWrite, opMkdir, opRm, opSetPerms
	path  string
	value []byte
	perms []perm
}

const (
	opWrite = iota
	opMkdir
	opRm
	opSetPerms
)

// transaction is a private copy of the tree plus what it read and wrote:
// at commit, every node it touched (or the nearest existing ancestor of
// one it found missing) must be unchanged in the live tree, otherwise the
// commit fails with EAGAIN — xenstored's "conflicting writes" rule.
type transaction struct {
	id    uint32
	dom   xen.DomID
	base  *tree             // the tree as it was at the start, never modified
	snap  *tree             // the transaction's working copy
	seen  map[string]uint64 // path -> generation observed
	ops   []txOp
	owner *Conn // nil for in-process transactions
}

// observe records the generation of path in the base tree, or of its
// nearest existing ancestor (whose child list a creation changes). For a
// removal the parent is recorded too.
func (tx *transaction) observe(path string, removal bool) {
	n, at := tx.base.nearest(path)
	if _, ok := tx.seen[at]; !ok {
		tx.seen[at] = n.gen
	}
	if removal && at == path && path != "/" {
		p := parentOf(path)
		if pn := tx.base.lookup(p); pn != nil {
			if _, ok := tx.seen[p]; !ok {
				tx.seen[p] = pn.gen
			}
		}
	}
}

// conflicts reports whether the live tree changed what tx observed.
func (tx *transaction) conflicts(live *tree) bool {
	for path, gen := range tx.seen {
		n := live.lookup(path)
		if n == nil || n.gen != gen {
			return true
		}
	}
	return false
}
