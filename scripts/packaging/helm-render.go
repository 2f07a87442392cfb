// helm-render renders a Helm (v3) chart the way `helm template` does, for
// machines that have no helm binary (its registries are not reachable here).
// It is built by scripts/check-packaging.sh from Debian's Go packages: Go's
// text/template with the sprig function library and sigs.k8s.io/yaml (what
// Helm itself uses), and gojsonschema for values.schema.json (also Helm's).
//
//	helm-render [flags] CHART_DIR > manifests.yaml
//	  -f FILE            values file merged over values.yaml (repeatable)
//	  -set KEY=VALUE     one value (dotted key; true/false/null/integers typed)
//	  -name NAME         release name (default "zgate")
//	  -namespace NS      release namespace (default "default")
//	  -kube-version V    cluster version checked against Chart.yaml kubeVersion
//	  -api-versions G/V  extra API group/version for .Capabilities (repeatable)
//	  -notes             print templates/NOTES.txt too
//
// What it reproduces: values coalescing (maps merge, null deletes a key),
// schema validation, the objects .Values .Release .Chart .Capabilities
// .Template .Files, the sprig functions less env/expandenv, Helm's own
// include, tpl, required, fail, toYaml, fromYaml, toJson, fromJson and
// lookup (always empty, as in `helm template`), missing keys rendering as
// empty, templates whose name starts with "_" rendered only through include,
// and empty manifests dropped. Errors go to stderr with exit status 1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	sprig "github.com/Masterminds/sprig/v3"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// APIVersions and KubeVersion mirror the parts of Helm's .Capabilities that
// charts use.
type APIVersions []string

func (a APIVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

type KubeVersion struct {
	Version, Major, Minor, GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions APIVersions
}

// Files gives templates the chart's non-template files, as .Files.Get does.
type Files map[string][]byte

func (f Files) Get(name string) string { return string(f[name]) }
func (f Files) GetBytes(name string) []byte { return f[name] }

const maxIncludeDepth = 1000

func readYAMLMap(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return m, nil
}

// coalesce merges src over dst: nested maps merge, a null in src deletes
// the key, anything else replaces.
func coalesce(dst, src map[string]interface{}) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sm, sok := v.(map[string]interface{})
		dm, dok := dst[k].(map[string]interface{})
		if sok && dok {
			coalesce(dm, sm)
			continue
		}
		dst[k] = v
	}
}

func parseSetValue(s string) interface{} {
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	return s
}

func applySet(vals map[string]interface{}, kv string) error {
	eq := strings.IndexByte(kv, '=')
	if eq <= 0 {
		return fmt.Errorf("-set %q: expected KEY=VALUE", kv)
	}
	key, val := kv[:eq], kv[eq+1:]
	if strings.ContainsAny(key, "[]") {
		return fmt.Errorf("-set %q: list indexes are not supported; use a values file", kv)
	}
	parts := strings.Split(key, ".")
	m := vals
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[p] = next
		}
		m = next
	}
	last := parts[len(parts)-1]
	if v := parseSetValue(val); v == nil {
		delete(m, last)
	} else {
		m[last] = v
	}
	return nil
}

// chartMetadata turns Chart.yaml's keys into the field names templates use
// (.Chart.Name, .Chart.AppVersion, .Chart.APIVersion ...).
func chartMetadata(raw map[string]interface{}) map[string]interface{} {
	meta := map[string]interface{}{}
	for k, v := range raw {
		name := strings.ToUpper(k[:1]) + k[1:]
		if k == "apiVersion" {
			name = "APIVersion"
		}
		meta[name] = v
	}
	return meta
}

func validateSchema(chartDir string, vals map[string]interface{}) error {
	schema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	doc, err := json.Marshal(vals)
	if err != nil {
		return err
	}
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(doc))
	if err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	if res.Valid() {
		return nil
	}
	var b strings.Builder
	b.WriteString("values don't meet the specifications of the schema(s) in the following chart(s):")
	for _, e := range res.Errors() {
		fmt.Fprintf(&b, "\n- %s: %s", e.Field(), e.Description())
	}
	return errors.New(b.String())
}

type tmplFile struct {
	name string // e.g. "zgate-relay/templates/deployment.yaml"
	text string
}

func loadChart(chartDir string) (map[string]interface{}, []tmplFile, Files, error) {
	raw, err := readYAMLMap(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return nil, nil, nil, err
	}
	name, _ := raw["name"].(string)
	if name == "" {
		return nil, nil, nil, errors.New("Chart.yaml: name is required")
	}
	var tmpls []tmplFile
	files := Files{}
	err = filepath.Walk(chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, "templates/") {
			tmpls = append(tmpls, tmplFile{name: name + "/" + rel, text: string(data)})
		} else {
			files[rel] = data
		}
		return nil
	})
	sort.Slice(tmpls, func(i, j int) bool { return tmpls[i].name < tmpls[j].name })
	return raw, tmpls, files, err
}

func funcMap(t **template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	depth := 0
	f["toYaml"] = func(v interface{}) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromYamlArray"] = func(s string) []interface{} {
		var a []interface{}
		if err := yaml.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(msg)
		}
		return v, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	f["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	f["include"] = func(name string, data interface{}) (string, error) {
		if depth >= maxIncludeDepth {
			return "", fmt.Errorf("include %q: nested too deep", name)
		}
		depth++
		defer func() { depth-- }()
		var buf bytes.Buffer
		if err := (*t).ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		c, err := (*t).Clone()
		if err != nil {
			return "", err
		}
		c, err = c.New("tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("tpl: %v", err)
		}
		var buf bytes.Buffer
		if err := c.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("tpl: %v", err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	return f
}

func run() error {
	var valueFiles, sets, apis multiFlag
	name := flag.String("name", "zgate", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "1.29.0", "Kubernetes version")
	notes := flag.Bool("notes", false, "print NOTES.txt too")
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Var(&sets, "set", "KEY=VALUE (repeatable)")
	flag.Var(&apis, "api-versions", "extra API version (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		return errors.New("usage: helm-render [flags] CHART_DIR")
	}
	chartDir := flag.Arg(0)

	raw, tmpls, files, err := loadChart(chartDir)
	if err != nil {
		return err
	}
	chartName := raw["name"].(string)
	kv, err := semver.NewVersion(*kubeVersion)
	if err != nil {
		return fmt.Errorf("-kube-version: %v", err)
	}
	if c, ok := raw["kubeVersion"].(string); ok && c != "" {
		cons, err := semver.NewConstraint(c)
		if err != nil {
			return fmt.Errorf("Chart.yaml kubeVersion %q: %v", c, err)
		}
		if !cons.Check(kv) {
			return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes v%s", c, kv)
		}
	}

	vals, err := readYAMLMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, vf := range valueFiles {
		m, err := readYAMLMap(vf)
		if err != nil {
			return err
		}
		coalesce(vals, m)
	}
	for _, s := range sets {
		if err := applySet(vals, s); err != nil {
			return err
		}
	}
	if err := validateSchema(chartDir, vals); err != nil {
		return err
	}

	caps := Capabilities{
		KubeVersion: KubeVersion{
			Version:    "v" + kv.String(),
			Major:      strconv.FormatUint(kv.Major(), 10),
			Minor:      strconv.FormatUint(kv.Minor(), 10),
			GitVersion: "v" + kv.String(),
		},
		APIVersions: append(APIVersions{"v1", "apps/v1", "batch/v1", "policy/v1",
			"networking.k8s.io/v1", "autoscaling/v2", "rbac.authorization.k8s.io/v1"}, apis...),
	}
	release := map[string]interface{}{
		"Name": *name, "Namespace": *namespace, "Service": "Helm",
		"IsInstall": true, "IsUpgrade": false, "Revision": 1,
	}

	var t *template.Template
	t = template.New("gotpl").Option("missingkey=zero").Funcs(funcMap(&t))
	for _, tf := range tmpls {
		if _, err := t.New(tf.name).Parse(tf.text); err != nil {
			return err
		}
	}

	var out strings.Builder
	var notesText string
	for _, tf := range tmpls {
		base := filepath.Base(tf.name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		top := map[string]interface{}{
			"Values":       vals,
			"Release":      release,
			"Chart":        chartMetadata(raw),
			"Capabilities": caps,
			"Files":        files,
			"Template": map[string]interface{}{
				"Name": tf.name, "BasePath": chartName + "/templates",
			},
		}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, tf.name, top); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notesText = text
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", tf.name, strings.TrimRight(text, "\n"))
	}
	if *notes && notesText != "" {
		fmt.Fprintf(&out, "\nNOTES:\n%s", notesText)
	}
	_, err = os.Stdout.WriteString(out.String())
	return err
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
