package spec

import (
	"fmt"
	"math/big"
	"net/netip"

	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// functions is the function library of spec expressions: a small set of
// Terraform's familiar ones, chosen so that no call can allocate without
// bound (no range, format widths or string repetition).
func functions() map[string]function.Function {
	return map[string]function.Function{
		"can":       tryfunc.CanFunc,
		"cidrhost":  cidrHostFunc(),
		"concat":    stdlib.ConcatFunc,
		"contains":  stdlib.ContainsFunc,
		"distinct":  stdlib.DistinctFunc,
		"element":   stdlib.ElementFunc,
		"flatten":   stdlib.FlattenFunc,
		"join":      stdlib.JoinFunc,
		"keys":      stdlib.KeysFunc,
		"length":    lengthFunc(),
		"lookup":    stdlib.LookupFunc,
		"lower":     stdlib.LowerFunc,
		"max":       stdlib.MaxFunc,
		"merge":     stdlib.MergeFunc,
		"min":       stdlib.MinFunc,
		"replace":   stdlib.ReplaceFunc,
		"split":     stdlib.SplitFunc,
		"substr":    stdlib.SubstrFunc,
		"tobool":    stdlib.MakeToFunc(cty.Bool),
		"tolist":    stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":     stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":  stdlib.MakeToFunc(cty.Number),
		"toset":     stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":  stdlib.MakeToFunc(cty.String),
		"trimspace": stdlib.TrimSpaceFunc,
		"try":       tryfunc.TryFunc,
		"upper":     stdlib.UpperFunc,
		"values":    stdlib.ValuesFunc,
		"zipmap":    stdlib.ZipmapFunc,
	}
}

// lengthFunc is length(x): the number of elements of a collection or, as in
// Terraform, the number of characters of a string.
func lengthFunc() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.Number),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if args[0].Type() == cty.String {
				return stdlib.Strlen(args[0])
			}
			return stdlib.Length(args[0])
		},
	})
}

// cidrHostFunc is cidrhost(prefix, hostnum): the hostnum-th address of
// prefix, counting from the network address (negative counts from the end).
func cidrHostFunc() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: "prefix", Type: cty.String},
			{Name: "hostnum", Type: cty.Number},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p, err := netip.ParsePrefix(args[0].AsString())
			if err != nil {
				return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "invalid CIDR: %s", err)
			}
			n := args[1].AsBigFloat()
			if !n.IsInt() {
				return cty.UnknownVal(cty.String), function.NewArgErrorf(1, "hostnum must be a whole number")
			}
			num, _ := n.Int(nil)
			a, err := nthAddr(p.Masked(), num)
			if err != nil {
				return cty.UnknownVal(cty.String), function.NewArgError(1, err)
			}
			return cty.StringVal(a.String()), nil
		},
	})
}

// nthAddr is the n-th address of p (negative n counts back from the last).
func nthAddr(p netip.Prefix, n *big.Int) (netip.Addr, error) {
	hostBits := p.Addr().BitLen() - p.Bits()
	size := new(big.Int).Lsh(big.NewInt(1), uint(hostBits))
	idx := new(big.Int).Set(n)
	if idx.Sign() < 0 {
		idx.Add(idx, size)
	}
	if idx.Sign() < 0 || idx.Cmp(size) >= 0 {
		return netip.Addr{}, fmt.Errorf("prefix %s has no host number %s", p, n)
	}
	base := new(big.Int).SetBytes(p.Addr().AsSlice())
	base.Add(base, idx)
	buf := make([]byte, p.Addr().BitLen()/8)
	base.FillBytes(buf)
	a, _ := netip.AddrFromSlice(buf)
	return a, nil
}
