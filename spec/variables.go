package spec

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// EnvPrefix starts the environment variables that set spec variables:
// CLUSTERCTL_VAR_region=eu sets var.region.
const EnvPrefix = "CLUSTERCTL_VAR_"

// VarInputs are variable values given outside the spec files. Precedence,
// lowest first: the default, CLUSTERCTL_VAR_<name>, *.auto.hclvars files in
// name order, then -var and -var-file in command-line order.
type VarInputs struct {
	// Args are the -var and -var-file options in command-line order; a
	// later one wins over an earlier one.
	Args []VarArg
	// Env is the environment as os.Environ returns it. CLUSTERCTL_VAR_<name>
	// entries set variables, HOME expands "~" in paths and SSH_AUTH_SOCK
	// makes use_agent default to true. Load uses the process environment
	// when Env is nil; Parse uses exactly what it is given.
	Env []string
}

// VarArg is one -var or -var-file option.
type VarArg struct {
	File  bool   // -var-file: Value is a file path; else -var: Value is NAME=VALUE
	Value string // as given on the command line
}

func (in VarInputs) getenv(key string) string {
	for _, kv := range slices.Backward(in.Env) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// varDecl is a decoded variable block.
type varDecl struct {
	name        string
	typ         cty.Type
	defaults    *typeexpr.Defaults
	def         cty.Value
	defRange    hcl.Range
	hasDefault  bool
	description string
	sensitive   bool
	rules       []varRule
	declRange   hcl.Range
}

type varRule struct {
	condition hcl.Expression
	message   string
	rng       hcl.Range
}

func variableSchema() *hcl.BodySchema {
	return &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
	}
}

func validationSchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "condition", Required: true}, {Name: "error_message", Required: true}}}
}

// decodeVariables reads the variable blocks, in the order written.
func decodeVariables(blocks hcl.Blocks) ([]*varDecl, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var decls []*varDecl
	seen := map[string]*varDecl{}
	for _, b := range blocks {
		name := b.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid variable name",
				Detail:  fmt.Sprintf("%q cannot be a variable name: use letters, digits, '_' and '-', starting with a letter.", name),
				Subject: b.LabelRanges[0].Ptr()})
			continue
		}
		if prev := seen[name]; prev != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate variable",
				Detail:  fmt.Sprintf("Variable %q was already declared at %s. Each variable is declared once across all files.", name, at(prev.declRange)),
				Subject: b.DefRange.Ptr()})
			continue
		}
		content, cdiags := b.Body.Content(variableSchema())
		diags = append(diags, cdiags...)
		d := &varDecl{name: name, typ: cty.DynamicPseudoType, declRange: b.DefRange}
		if a := content.Attributes["type"]; a != nil {
			ty, defaults, tdiags := typeexpr.TypeConstraintWithDefaults(a.Expr)
			diags = append(diags, tdiags...)
			if !tdiags.HasErrors() {
				d.typ, d.defaults = ty, defaults
			}
		}
		if a := content.Attributes["description"]; a != nil {
			d.description, diags = constString(a, diags)
		}
		if a := content.Attributes["sensitive"]; a != nil {
			v, vdiags := a.Expr.Value(nil)
			diags = append(diags, vdiags...)
			if !vdiags.HasErrors() {
				if bv, err := convert.Convert(v, cty.Bool); err != nil || bv.IsNull() || !bv.IsKnown() {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid sensitive", Detail: "sensitive must be true or false.", Subject: a.Expr.Range().Ptr()})
				} else {
					d.sensitive = bv.True()
				}
			}
		}
		if a := content.Attributes["default"]; a != nil {
			v, vdiags := a.Expr.Value(nil)
			diags = append(diags, vdiags...)
			if !vdiags.HasErrors() && !v.IsNull() {
				d.def, d.hasDefault, d.defRange = v, true, a.Expr.Range()
			}
		}
		for _, vb := range content.Blocks {
			vc, vdiags := vb.Body.Content(validationSchema())
			diags = append(diags, vdiags...)
			if vdiags.HasErrors() {
				continue
			}
			r := varRule{condition: vc.Attributes["condition"].Expr, rng: vb.DefRange}
			r.message, diags = constString(vc.Attributes["error_message"], diags)
			for _, tr := range r.condition.Variables() {
				if len(tr) < 2 || tr.RootName() != "var" || !isAttrStep(tr[1], name) {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid reference in variable validation",
						Detail:  fmt.Sprintf("The condition of a validation rule for var.%s can only refer to var.%s.", name, name),
						Subject: tr.SourceRange().Ptr()})
				}
			}
			d.rules = append(d.rules, r)
		}
		seen[name] = d
		decls = append(decls, d)
	}
	return decls, diags
}

func isAttrStep(t hcl.Traverser, name string) bool {
	a, ok := t.(hcl.TraverseAttr)
	return ok && a.Name == name
}

// constString evaluates a constant string attribute.
func constString(a *hcl.Attribute, diags hcl.Diagnostics) (string, hcl.Diagnostics) {
	v, vdiags := a.Expr.Value(nil)
	diags = append(diags, vdiags...)
	if vdiags.HasErrors() {
		return "", diags
	}
	sv, err := convert.Convert(v, cty.String)
	if err != nil || sv.IsNull() || !sv.IsKnown() {
		return "", append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
			Detail: fmt.Sprintf("Inappropriate value for attribute %q: a string is required.", a.Name), Subject: a.Expr.Range().Ptr()})
	}
	return sv.AsString(), diags
}

// rawValue is a variable value before conversion to its type.
type rawValue struct {
	v   cty.Value
	src ValueSource
}

// varFile is a variable definitions file: NAME = VALUE lines.
type varFile struct {
	name string
	kind SourceKind
	file *hcl.File
}

// resolveVariables decides every variable's value from its sources, checks
// types and validation rules, and returns the values ready for var.NAME
// (sensitive ones marked).
func resolveVariables(decls []*varDecl, files []varFile, in VarInputs) ([]Variable, cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	byName := map[string]*varDecl{}
	for _, d := range decls {
		byName[d.name] = d
	}
	raw := map[string]rawValue{}
	for _, d := range decls {
		if d.hasDefault {
			raw[d.name] = rawValue{d.def, ValueSource{Kind: FromDefault, Range: d.defRange}}
		}
	}
	for _, kv := range in.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		d := byName[strings.TrimPrefix(k, EnvPrefix)]
		if d == nil {
			continue // like Terraform: the environment may hold values for other specs
		}
		val, vdiags := parseRawValue(d, v, ValueSource{Kind: FromEnv, Env: k})
		diags = append(diags, vdiags...)
		if !vdiags.HasErrors() {
			raw[d.name] = rawValue{val, ValueSource{Kind: FromEnv, Env: k}}
		}
	}
	fileByName := map[string]varFile{}
	for _, f := range files {
		if f.kind == FromAutoFile {
			diags = append(diags, readVarFile(f, byName, raw)...)
		} else {
			fileByName[f.name] = f
		}
	}
	for _, arg := range in.Args {
		if arg.File {
			if f, ok := fileByName[arg.Value]; ok {
				diags = append(diags, readVarFile(f, byName, raw)...)
			}
			continue
		}
		name, value, ok := strings.Cut(arg.Value, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid -var option",
				Detail: fmt.Sprintf("The option -var %q is not of the form NAME=VALUE.", arg.Value)})
			continue
		}
		d := byName[name]
		if d == nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
				Detail: fmt.Sprintf("The option -var sets %q, but no variable of that name is declared. Declare it with a variable block.%s", name, suggest(name, sortedKeys(byName)))})
			continue
		}
		val, vdiags := parseRawValue(d, value, ValueSource{Kind: FromFlag})
		diags = append(diags, vdiags...)
		if !vdiags.HasErrors() {
			raw[name] = rawValue{val, ValueSource{Kind: FromFlag}}
		}
	}
	if diags.HasErrors() {
		return nil, cty.NilVal, diags
	}

	var vars []Variable
	objs := map[string]cty.Value{}
	for _, d := range decls {
		r, ok := raw[d.name]
		if ok && r.v.IsNull() && d.hasDefault && r.src.Kind != FromDefault {
			r, ok = rawValue{d.def, ValueSource{Kind: FromDefault, Range: d.defRange}}, true
		}
		if !ok || r.v.IsNull() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No value for required variable",
				Detail:  fmt.Sprintf("Variable %q has no default, so it needs a value: -var '%s=...', a -var-file, a *.auto.hclvars file or the environment variable %s%s.", d.name, d.name, EnvPrefix, d.name),
				Subject: d.declRange.Ptr()})
			continue
		}
		v := r.v
		if d.defaults != nil {
			v = d.defaults.Apply(v)
		}
		cv, err := convert.Convert(v, d.typ)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
				Detail:  fmt.Sprintf("The value for var.%s from %s is not a %s: %s.", d.name, r.src, typeexpr.TypeString(d.typ), err),
				Subject: valueSubject(d, r.src)})
			continue
		}
		if !checkRules(d, cv, r.src, &diags) {
			continue
		}
		vars = append(vars, Variable{Name: d.name, Description: d.description, Type: d.typ, Value: cv, Sensitive: d.sensitive, Source: r.src, DeclRange: d.declRange})
		if d.sensitive {
			cv = cv.Mark(sensitiveMark{})
		}
		objs[d.name] = cv
	}
	slices.SortFunc(vars, func(a, b Variable) int { return strings.Compare(a.Name, b.Name) })
	return vars, cty.ObjectVal(objs), diags
}

// valueSubject is where a diagnostic about a variable's value points: the
// value itself when it is written in a file, else the variable block. A
// sensitive value is never shown, not even as a source line.
func valueSubject(d *varDecl, src ValueSource) *hcl.Range {
	if src.Range.Filename != "" && !d.sensitive {
		return src.Range.Ptr()
	}
	return d.declRange.Ptr()
}

// checkRules evaluates d's validation rules against v.
func checkRules(d *varDecl, v cty.Value, src ValueSource, diags *hcl.Diagnostics) bool {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{d.name: v})}, Functions: functions()}
	ok := true
	for _, r := range d.rules {
		res, rdiags := r.condition.Value(ctx)
		*diags = append(*diags, rdiags...)
		if rdiags.HasErrors() {
			ok = false
			continue
		}
		res, _ = res.UnmarkDeep()
		bv, err := convert.Convert(res, cty.Bool)
		if err != nil || bv.IsNull() || !bv.IsKnown() {
			*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid validation condition",
				Detail: "The condition must be true or false.", Subject: r.condition.Range().Ptr()})
			ok = false
			continue
		}
		if bv.False() {
			shown := formatValue(v)
			if d.sensitive {
				shown = "(sensitive)"
			}
			*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
				Detail:  fmt.Sprintf("%s\n\nvar.%s = %s (from %s) fails the validation rule at %s.", r.message, d.name, shown, src, at(r.rng)),
				Subject: valueSubject(d, src)})
			ok = false
		}
	}
	return ok
}

// parseRawValue reads a value given as text (-var, environment): taken
// literally for primitive types and for variables without a type, parsed
// as an HCL expression for lists, maps and objects.
func parseRawValue(d *varDecl, text string, src ValueSource) (cty.Value, hcl.Diagnostics) {
	if d.typ.IsPrimitiveType() || d.typ == cty.DynamicPseudoType {
		return cty.StringVal(text), nil
	}
	fake := fmt.Sprintf("<value for var.%s>", d.name)
	if nd := CheckNesting([]byte(text), fake); nd != nil {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail:  fmt.Sprintf("The value for var.%s from %s: %s", d.name, src, nd.Detail),
			Subject: d.declRange.Ptr()}}
	}
	expr, diags := hclsyntax.ParseExpression([]byte(text), fake, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail:  fmt.Sprintf("The value for var.%s from %s must be an HCL expression of type %s: %s", d.name, src, typeexpr.TypeString(d.typ), diags[0].Detail),
			Subject: d.declRange.Ptr()}}
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail:  fmt.Sprintf("The value for var.%s from %s must be a constant: %s", d.name, src, diags[0].Detail),
			Subject: d.declRange.Ptr()}}
	}
	return v, nil
}

// readVarFile applies the NAME = VALUE lines of a variable definitions file.
func readVarFile(f varFile, byName map[string]*varDecl, raw map[string]rawValue) hcl.Diagnostics {
	attrs, diags := f.file.Body.JustAttributes()
	for _, a := range sortedAttrs(attrs) {
		d := byName[a.Name]
		if d == nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Value for undeclared variable",
				Detail:  fmt.Sprintf("%s sets %q, but no variable of that name is declared; the value is ignored.%s", f.name, a.Name, suggest(a.Name, sortedKeys(byName))),
				Subject: a.NameRange.Ptr()})
			continue
		}
		v, vdiags := a.Expr.Value(nil)
		diags = append(diags, vdiags...)
		if vdiags.HasErrors() {
			continue
		}
		raw[a.Name] = rawValue{v, ValueSource{Kind: f.kind, File: f.name, Range: a.Expr.Range()}}
	}
	return diags
}

// sortedAttrs returns attributes in source order.
func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *hcl.Attribute) int {
		if c := strings.Compare(a.Range.Filename, b.Range.Filename); c != 0 {
			return c
		}
		return a.Range.Start.Byte - b.Range.Start.Byte
	})
	return out
}

// at renders a range as FILE:LINE for messages.
func at(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }

// evalLocals evaluates the locals blocks in dependency order.
func evalLocals(blocks hcl.Blocks, vars cty.Value, varNames map[string]bool) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	defs := map[string]*hcl.Attribute{}
	for _, b := range blocks {
		attrs, adiags := b.Body.JustAttributes()
		diags = append(diags, adiags...)
		for _, a := range sortedAttrs(attrs) {
			if prev := defs[a.Name]; prev != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate local value",
					Detail:  fmt.Sprintf("Local value %q was already defined at %s.", a.Name, at(prev.Range)),
					Subject: a.NameRange.Ptr()})
				continue
			}
			defs[a.Name] = a
		}
	}
	names := map[string]bool{}
	for n := range defs {
		names[n] = true
	}
	dec := &decoder{vars: varNames, locals: names}
	vals := map[string]cty.Value{}
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var visit func(name string, path []string) bool
	visit = func(name string, path []string) bool {
		switch state[name] {
		case done:
			_, ok := vals[name]
			return ok
		case visiting:
			a := defs[name]
			cycle := append(slices.Clone(path[max(0, slices.Index(path, name)):]), name)
			dec.errorf(a.NameRange.Ptr(), "Cycle in local values", "Local values refer to each other in a loop: %s.", strings.Join(prefixAll("local.", cycle), " -> "))
			return false
		}
		state[name] = visiting
		defer func() { state[name] = done }()
		a := defs[name]
		if !dec.checkRefs(a.Expr) {
			return false
		}
		// The context holds just the locals this one refers to: building
		// an object of all of them for each would take quadratic time.
		refs := map[string]cty.Value{}
		for _, tr := range a.Expr.Variables() {
			if tr.RootName() != "local" || len(tr) < 2 {
				continue
			}
			step, ok := tr[1].(hcl.TraverseAttr)
			if ok && !visit(step.Name, append(path, name)) {
				return false
			}
			if ok {
				refs[step.Name] = vals[step.Name]
			}
		}
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": vars, "local": cty.ObjectVal(refs)}, Functions: functions()}
		v, vdiags := a.Expr.Value(ctx)
		dec.diags = append(dec.diags, vdiags...)
		if vdiags.HasErrors() {
			return false
		}
		vals[name] = v
		return true
	}
	for _, n := range sortedKeys(defs) {
		visit(n, nil)
	}
	diags = append(diags, dec.diags...)
	return cty.ObjectVal(vals), diags
}

func prefixAll(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}
