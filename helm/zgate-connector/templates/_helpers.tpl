{{/* Chart name, at most 63 characters. */}}
{{- define "zgate-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release already names the chart. */}}
{{- define "zgate-connector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "zgate-connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "zgate-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zgate-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "zgate-connector.labels" -}}
helm.sh/chart: {{ include "zgate-connector.chart" . }}
{{ include "zgate-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zgate
{{- end }}

{{- define "zgate-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zgate-connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding tls.crt, tls.key and ca.crt. */}}
{{- define "zgate-connector.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "zgate-connector.fullname" .) }}
{{- end }}
{{- end }}

{{/*
zgate-connector's configuration file: .Values.config plus the keys the
chart manages (file locations inside the pod, the ops port, audit to
standard output). Setting a managed key in .Values.config is an error
rather than silently ignored.
*/}}
{{- define "zgate-connector.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- range $k := list "ca" "cert" "key" "policy" "audit" "ops_listen" }}
{{- if hasKey $cfg $k }}
{{- fail (printf "config.%s is set by the chart (see values.yaml: tls, policy, ports); remove it from config" $k) }}
{{- end }}
{{- end }}
{{- if not $cfg.relays }}
{{- fail "config.relays: list the relays to dial (host:port), e.g. --set 'config.relays={relay.example.org:4433}'" }}
{{- end }}
{{- if not $cfg.prefixes }}
{{- fail "config.prefixes: list the on-prem prefixes this connector serves" }}
{{- end }}
{{- $_ := set $cfg "ca" "/etc/zgate/tls/ca.crt" }}
{{- $_ := set $cfg "cert" "/etc/zgate/tls/connector.crt" }}
{{- $_ := set $cfg "key" "/etc/zgate/tls/connector.key" }}
{{- $_ := set $cfg "policy" "/etc/zgate/connector-policy.yaml" }}
{{- $_ := set $cfg "audit" "-" }}
{{- $_ := set $cfg "ops_listen" (printf "0.0.0.0:%d" (int .Values.ports.ops)) }}
{{- toYaml $cfg }}
{{- end }}
