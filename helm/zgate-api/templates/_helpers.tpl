{{/* Chart name, at most 63 characters. */}}
{{- define "zgate-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release already names the chart. */}}
{{- define "zgate-api.fullname" -}}
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

{{- define "zgate-api.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "zgate-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zgate-api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "zgate-api.labels" -}}
helm.sh/chart: {{ include "zgate-api.chart" . }}
{{ include "zgate-api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zgate
{{- end }}

{{- define "zgate-api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zgate-api.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding tls.crt, tls.key and ca.crt. */}}
{{- define "zgate-api.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "zgate-api.fullname" .) }}
{{- end }}
{{- end }}

{{/*
zgate-api's configuration file: .Values.config plus the keys the chart
manages (the port, the file locations inside the pod). Setting a managed
key in .Values.config is an error rather than silently ignored; the
database never goes into the file (ZGATE_DATABASE, from a Secret).
*/}}
{{- define "zgate-api.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- range $k := list "listen" "cert" "key" "ca" "crl" "admin_token_file" }}
{{- if hasKey $cfg $k }}
{{- fail (printf "config.%s is set by the chart (see values.yaml: ports, tls, adminToken); remove it from config" $k) }}
{{- end }}
{{- end }}
{{- if hasKey $cfg "database" }}
{{- fail "config.database: the connection string (and its password) comes from a Secret: use database.existingSecret or database.url" }}
{{- end }}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.ports.https)) }}
{{- $_ := set $cfg "cert" "/etc/zgate/tls/api.crt" }}
{{- $_ := set $cfg "key" "/etc/zgate/tls/api.key" }}
{{- $_ := set $cfg "ca" "/etc/zgate/tls/ca.crt" }}
{{- if include "zgate-api.crlKey" . }}
{{- $_ := set $cfg "crl" "/etc/zgate/tls/ca.crl" }}
{{- end }}
{{- if .Values.adminToken.existingSecret }}
{{- $_ := set $cfg "admin_token_file" "/etc/zgate/admin/token" }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
The CRL's key in the TLS Secret, or "" when there is none: existingSecret's
existingSecretCRLKey, or ca.crl in the chart's own Secret (tls.crl).
*/}}
{{- define "zgate-api.crlKey" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecretCRLKey }}
{{- else if .Values.tls.crl }}
{{- "ca.crl" }}
{{- end }}
{{- end }}

{{/* The Secret with the database connection string, and its key. */}}
{{- define "zgate-api.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "zgate-api.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- define "zgate-api.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey | default "database" }}
{{- else }}
{{- "database" }}
{{- end }}
{{- end }}

{{/* The Secret cert-manager writes zgate-api's certificate to. */}}
{{- define "zgate-api.certSecretName" -}}
{{- default (printf "%s-cert" (include "zgate-api.fullname" .)) .Values.certManager.secretName }}
{{- end }}

{{/*
The names zgate-api's certificate carries, as YAML {dnsNames, ipAddresses}:
certManager.dnsNames / ipAddresses, or else the Service's names inside the
cluster (what the relays' ipam.api.url names).
*/}}
{{- define "zgate-api.certNames" -}}
{{- $dns := .Values.certManager.dnsNames | default list }}
{{- $ips := .Values.certManager.ipAddresses | default list }}
{{- if and (not $dns) (not $ips) }}
{{- $n := include "zgate-api.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $dns = list $n (printf "%s.%s" $n $ns) (printf "%s.%s.svc" $n $ns) (printf "%s.%s.svc.cluster.local" $n $ns) }}
{{- end }}
{{- toYaml (dict "dnsNames" $dns "ipAddresses" $ips) }}
{{- end }}

{{/* 1 when the chart makes a TLS Secret of its own (secret.yaml renders it). */}}
{{- define "zgate-api.chartTLSSecret" -}}
{{- if and (not .Values.tls.existingSecret) (or (not .Values.certManager.enabled) (not .Values.certManager.clientCAFromIssuer) .Values.tls.crl) }}1{{ end }}
{{- end }}
