package spec

import (
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// sensitiveMark marks values derived from a sensitive variable.
type sensitiveMark struct{}

// field is what every decoded attribute keeps besides its value: whether it
// was written, where, and whether its value derives from a sensitive
// variable (then diagnostics must not print it).
type field struct {
	set       bool
	name      string
	rng       hcl.Range // the value expression
	nameRng   hcl.Range
	expr      hcl.Expression
	sensitive bool
}

// show renders s for a diagnostic, hiding sensitive values and clipping
// long ones.
func (f field) show(s string) string {
	if f.sensitive {
		return "(sensitive)"
	}
	return quote(s)
}

type strField struct {
	field
	v string
}

type intField struct {
	field
	v int
}

type boolField struct {
	field
	v bool
}

type listField struct {
	field
	v []string
}

type mapField struct {
	field
	v         map[string]string
	sensitive map[string]bool // keys whose value is sensitive
}

// decoder evaluates attributes against the spec's evaluation context and
// collects diagnostics.
type decoder struct {
	ctx     *hcl.EvalContext
	vars    map[string]bool // declared variables, for reference checks
	locals  map[string]bool // defined locals
	varInfo map[string]Variable
	diags   hcl.Diagnostics
}

// valueErr reports an error about the value of f. When the value comes
// from variables, the detail says what they are and where they came from,
// since the spec line alone does not show it.
func (d *decoder) valueErr(f field, summary, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if f.sensitive {
		// The message may quote the value; say less rather than leak it.
		detail = fmt.Sprintf("The value of %s is not valid (%s). It comes from a sensitive variable, so it is not shown.", f.name, strings.ToLower(summary))
	}
	if f.expr != nil {
		seen := map[string]bool{}
		var notes []string
		for _, tr := range f.expr.Variables() {
			if tr.RootName() != "var" || len(tr) < 2 {
				continue
			}
			step, ok := tr[1].(hcl.TraverseAttr)
			v, known := d.varInfo[step.Name]
			if !ok || !known || seen[v.Name] {
				continue
			}
			seen[v.Name] = true
			notes = append(notes, fmt.Sprintf("var.%s is %s, from %s.", v.Name, v.DisplayValue(), v.Source))
		}
		slices.Sort(notes)
		if len(notes) > 0 {
			detail += "\n\n" + strings.Join(notes, "\n")
		}
	}
	rng := f.rng
	d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &rng})
}

func (d *decoder) errorf(subject *hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: subject})
}

func (d *decoder) warnf(subject *hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: subject})
}

// checkRefs reports references to undeclared variables or locals, and to
// anything that is not var.NAME or local.NAME. It returns false if any.
func (d *decoder) checkRefs(expr hcl.Expression) bool {
	ok := true
	for _, tr := range expr.Variables() {
		if !d.checkRef(tr) {
			ok = false
		}
	}
	return ok
}

func (d *decoder) checkRef(tr hcl.Traversal) bool {
	rng := tr.SourceRange()
	root := tr.RootName()
	var known map[string]bool
	var what string
	switch root {
	case "var":
		known, what = d.vars, "variable"
	case "local":
		known, what = d.locals, "local value"
	default:
		d.errorf(&rng, "Unknown reference", "There is nothing named %q here. A spec can refer to variables as var.NAME and to local values as local.NAME.%s", root, suggest(root, []string{"var", "local"}))
		return false
	}
	if len(tr) < 2 {
		d.errorf(&rng, "Invalid reference", "A reference to %s needs a name: %s.NAME.", root, root)
		return false
	}
	step, isAttr := tr[1].(hcl.TraverseAttr)
	if !isAttr {
		d.errorf(&rng, "Invalid reference", "Refer to a %s by name: %s.NAME.", what, root)
		return false
	}
	if !known[step.Name] {
		d.errorf(&rng, "Reference to undeclared "+what, "There is no %s named %q.%s", what, step.Name, suggest(step.Name, sortedKeys(known)))
		return false
	}
	return true
}

// eval evaluates an attribute and converts it to ty. ok is false when the
// attribute is absent or null, or on error (then a diagnostic is recorded).
// The returned value is unmarked; marks are reported separately.
func (d *decoder) eval(a *hcl.Attribute, ty cty.Type) (v cty.Value, f field, ok bool) {
	if a == nil {
		return cty.NilVal, field{}, false
	}
	// f.set stays false unless the value decodes; f.rng says it was written.
	f = field{name: a.Name, rng: a.Expr.Range(), nameRng: a.NameRange, expr: a.Expr}
	if !d.checkRefs(a.Expr) {
		return cty.NilVal, f, false
	}
	v, diags := a.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, f, false
	}
	v, marks := v.UnmarkDeepWithPaths()
	f.sensitive = len(marks) > 0
	if v.IsNull() {
		return cty.NilVal, field{}, false // null means not set, as in Terraform
	}
	if !v.IsWhollyKnown() {
		d.valueErr(f, "Unknown value", "The value of %q cannot be known when the spec is read.", a.Name)
		return cty.NilVal, f, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		d.valueErr(f, "Incorrect attribute value type", "Inappropriate value for attribute %q: %s.", a.Name, err)
		return cty.NilVal, f, false
	}
	if !cv.IsWhollyKnown() || cv.IsNull() {
		return cty.NilVal, field{}, false
	}
	f.set = true
	return cv, f, true
}

func (d *decoder) str(attrs hcl.Attributes, name string) strField {
	v, f, ok := d.eval(attrs[name], cty.String)
	if !ok {
		return strField{field: f}
	}
	return strField{field: f, v: v.AsString()}
}

func (d *decoder) boolean(attrs hcl.Attributes, name string) boolField {
	v, f, ok := d.eval(attrs[name], cty.Bool)
	if !ok {
		return boolField{field: f}
	}
	return boolField{field: f, v: v.True()}
}

// integer decodes a whole number in [lo, hi].
func (d *decoder) integer(attrs hcl.Attributes, name string, lo, hi int) intField {
	v, f, ok := d.eval(attrs[name], cty.Number)
	if !ok {
		return intField{field: f}
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() || bf.Cmp(big.NewFloat(float64(lo))) < 0 || bf.Cmp(big.NewFloat(float64(hi))) > 0 {
		shown := bf.Text('g', 10)
		if f.sensitive {
			shown = "(sensitive)"
		}
		d.valueErr(f, "Invalid value for "+name, "%s must be a whole number from %d to %d; got %s.", name, lo, hi, shown)
		f.set = false
		return intField{field: f}
	}
	n, _ := bf.Int64()
	return intField{field: f, v: int(n)}
}

func (d *decoder) list(attrs hcl.Attributes, name string) listField {
	v, f, ok := d.eval(attrs[name], cty.List(cty.String))
	if !ok {
		return listField{field: f}
	}
	out := []string{}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			rng := elemRange(f.expr, len(out))
			d.errorf(&rng, "Invalid value for "+name, "The elements of %s must not be null.", name)
			f.set = false
			return listField{field: f}
		}
		out = append(out, e.AsString())
	}
	return listField{field: f, v: out}
}

func (d *decoder) strMap(attrs hcl.Attributes, name string) mapField {
	a := attrs[name]
	if a == nil {
		return mapField{}
	}
	f := field{name: a.Name, rng: a.Expr.Range(), nameRng: a.NameRange, expr: a.Expr}
	if !d.checkRefs(a.Expr) {
		return mapField{field: f}
	}
	v, diags := a.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return mapField{field: f}
	}
	v, marks := v.UnmarkDeepWithPaths()
	if v.IsNull() {
		return mapField{}
	}
	if !v.IsWhollyKnown() {
		d.valueErr(f, "Unknown value", "The value of %q cannot be known when the spec is read.", a.Name)
		return mapField{field: f}
	}
	cv, err := convert.Convert(v, cty.Map(cty.String))
	if err != nil {
		d.valueErr(f, "Incorrect attribute value type", "Inappropriate value for attribute %q: %s.", a.Name, err)
		return mapField{field: f}
	}
	f.set = true
	out := mapField{field: f, v: map[string]string{}, sensitive: map[string]bool{}}
	for it := cv.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if e.IsNull() {
			d.valueErr(f, "Invalid value for "+name, "The value of %s[%q] must not be null.", name, k.AsString())
			f.set = false
			return mapField{field: f}
		}
		out.v[k.AsString()] = e.AsString()
	}
	for _, m := range marks {
		if len(m.Path) == 0 {
			// The whole map is sensitive.
			out.field.sensitive = true
			for k := range out.v {
				out.sensitive[k] = true
			}
			continue
		}
		if idx, ok := m.Path[0].(cty.IndexStep); ok && idx.Key.Type() == cty.String && !idx.Key.IsMarked() && idx.Key.IsKnown() && !idx.Key.IsNull() {
			out.sensitive[idx.Key.AsString()] = true
		} else if ga, ok := m.Path[0].(cty.GetAttrStep); ok {
			out.sensitive[ga.Name] = true
		}
	}
	return out
}

// elemRange is the range of the i-th element of a list written literally,
// or the whole expression otherwise.
func elemRange(expr hcl.Expression, i int) hcl.Range {
	if t, ok := expr.(*hclsyntax.TupleConsExpr); ok && i >= 0 && i < len(t.Exprs) {
		return t.Exprs[i].Range()
	}
	return expr.Range()
}

// keyRange is the range of key in a map or object written literally, or the
// whole expression otherwise.
func keyRange(expr hcl.Expression, key string) hcl.Range {
	if o, ok := expr.(*hclsyntax.ObjectConsExpr); ok {
		for _, item := range o.Items {
			k, diags := item.KeyExpr.Value(nil)
			if diags.HasErrors() || !k.IsKnown() || k.IsNull() || k.IsMarked() {
				continue
			}
			if ks, err := convert.Convert(k, cty.String); err == nil && ks.AsString() == key {
				return item.KeyExpr.Range()
			}
		}
	}
	return expr.Range()
}

// formatValue renders a value in HCL-ish syntax for messages.
func formatValue(v cty.Value) string {
	if v == cty.NilVal || !v.IsKnown() {
		return "(unknown)"
	}
	if v.IsMarked() {
		return "(sensitive)"
	}
	if v.IsNull() {
		return "null"
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return fmt.Sprintf("%q", v.AsString())
	case ty == cty.Number:
		return v.AsBigFloat().Text('f', -1)
	case ty == cty.Bool:
		if v.True() {
			return "true"
		}
		return "false"
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			parts = append(parts, formatValue(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case ty.IsMapType() || ty.IsObjectType():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			parts = append(parts, fmt.Sprintf("%s = %s", formatValue(k), formatValue(e)))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return v.GoString()
}
