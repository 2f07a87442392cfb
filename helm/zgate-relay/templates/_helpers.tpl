{{/* Chart name, at most 63 characters. */}}
{{- define "zgate-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release already names the chart. */}}
{{- define "zgate-relay.fullname" -}}
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

{{- define "zgate-relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "zgate-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zgate-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "zgate-relay.labels" -}}
helm.sh/chart: {{ include "zgate-relay.chart" . }}
{{ include "zgate-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zgate
{{- end }}

{{- define "zgate-relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zgate-relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding tls.crt, tls.key and ca.crt. */}}
{{- define "zgate-relay.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "zgate-relay.fullname" .) }}
{{- end }}
{{- end }}

{{/* The CRL's key in the TLS Secret, or "" when there is none. */}}
{{- define "zgate-relay.crlKey" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecretCRLKey }}
{{- else if .Values.tls.crl }}
{{- "ca.crl" }}
{{- end }}
{{- end }}

{{/*
The relay's configuration file: .Values.config plus the keys the chart
manages (ports, file locations inside the pod, drain period). Setting a
managed key in .Values.config is an error rather than silently ignored.
*/}}
{{- define "zgate-relay.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- range $k := list "listen" "ops_listen" "tls" "policy" "state_file" }}
{{- if hasKey $cfg $k }}
{{- fail (printf "config.%s is set by the chart (see values.yaml: ports, tls, policy, state); remove it from config" $k) }}
{{- end }}
{{- end }}
{{- $timeouts := deepCopy (get $cfg "timeouts" | default dict) }}
{{- if hasKey $timeouts "drain_grace" }}
{{- fail "config.timeouts.drain_grace is set by the chart: use drainGraceSeconds" }}
{{- end }}
{{- $_ := set $timeouts "drain_grace" (printf "%ds" (int .Values.drainGraceSeconds)) }}
{{- $_ := set $cfg "timeouts" $timeouts }}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.ports.quic)) }}
{{- /* loopback here; the Deployment sets ZGATE_OPS_LISTEN to the pod address */}}
{{- $_ := set $cfg "ops_listen" (printf "127.0.0.1:%d" (int .Values.ports.ops)) }}
{{- $tls := dict "cert" "/etc/zgate/tls/relay.crt" "key" "/etc/zgate/tls/relay.key" "client_ca" "/etc/zgate/tls/ca.crt" }}
{{- if include "zgate-relay.crlKey" . }}
{{- $_ := set $tls "crl" "/etc/zgate/tls/ca.crl" }}
{{- end }}
{{- $_ := set $cfg "tls" $tls }}
{{- $_ := set $cfg "policy" "/etc/zgate/policy.yaml" }}
{{- if .Values.state.enabled }}
{{- $_ := set $cfg "state_file" "/var/lib/zgate/ipam.state" }}
{{- end }}
{{- if .Values.ipamApi.enabled }}
{{- range $k := list "ipam" "relay_id" }}
{{- if hasKey $cfg $k }}
{{- fail (printf "config.%s is set by the chart when ipamApi.enabled: use ipamApi (url, relayId, timeout, existingSecret)" $k) }}
{{- end }}
{{- end }}
{{- $url := required "ipamApi.url: zgate-api's address, e.g. https://zgate-api.zgate.svc:8443" .Values.ipamApi.url }}
{{- if not (hasPrefix "https://" $url) }}
{{- fail (printf "ipamApi.url %s: must start with https:// (zgate-api speaks only HTTPS)" $url) }}
{{- end }}
{{- $_ := set $cfg "relay_id" (include "zgate-relay.relayId" .) }}
{{- $api := dict "url" $url "ca" "/etc/zgate/tls/api-ca.crt" "cert" "/etc/zgate/tls/api-client.crt" "key" "/etc/zgate/tls/api-client.key" "timeout" .Values.ipamApi.timeout }}
{{- $_ := set $cfg "ipam" (dict "backend" "api" "api" $api) }}
{{- end }}
{{- if hasKey $cfg "policy_api" }}
{{- fail "config.policy_api is set by the chart: use policyApi (url, poll, timeout, existingSecret); the fetched policy needs the writable volume it mounts" }}
{{- end }}
{{- if .Values.policyApi.enabled }}
{{- if and (hasKey $cfg "relay_id") (not .Values.ipamApi.enabled) }}
{{- fail "config.relay_id is set by the chart when policyApi.enabled: use policyApi.relayId" }}
{{- end }}
{{- $url := .Values.policyApi.url }}
{{- if and (not $url) .Values.ipamApi.enabled }}
{{- $url = .Values.ipamApi.url }}
{{- end }}
{{- $url = required "policyApi.url: zgate-api's address, e.g. https://zgate-api.zgate.svc:8443 (or enable ipamApi, whose url it defaults to)" $url }}
{{- if not (hasPrefix "https://" $url) }}
{{- fail (printf "policyApi.url %s: must start with https:// (zgate-api speaks only HTTPS)" $url) }}
{{- end }}
{{- $_ := set $cfg "relay_id" (include "zgate-relay.relayId" .) }}
{{- /* the same client certificate as ipam.api (one Secret, mounted once) */}}
{{- $pa := dict "url" $url "ca" "/etc/zgate/tls/api-ca.crt" "cert" "/etc/zgate/tls/api-client.crt" "key" "/etc/zgate/tls/api-client.key" "poll" .Values.policyApi.poll "timeout" .Values.policyApi.timeout }}
{{- $_ := set $cfg "policy_api" $pa }}
{{- /* the relay writes what it fetches here: an emptyDir, not the read-only /etc/zgate */}}
{{- $_ := set $cfg "policy" "/var/lib/zgate-policy/policy.api.yaml" }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The ConfigMap holding the policy (no checksum annotation: it rolls nothing). */}}
{{- define "zgate-relay.policyConfigMapName" -}}
{{- printf "%s-policy" (include "zgate-relay.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret cert-manager writes the relay's certificate to. */}}
{{- define "zgate-relay.certSecretName" -}}
{{- default (printf "%s-cert" (include "zgate-relay.fullname" .)) .Values.certManager.secretName }}
{{- end }}

{{/*
The names the relay's certificate carries, as YAML {dnsNames, ipAddresses}:
certManager.dnsNames / ipAddresses, or else the host of config.uri_template
(the name the agents dial and verify).
*/}}
{{- define "zgate-relay.certNames" -}}
{{- $dns := .Values.certManager.dnsNames | default list }}
{{- $ips := .Values.certManager.ipAddresses | default list }}
{{- if and (not $dns) (not $ips) }}
{{- $host := (urlParse .Values.config.uri_template).hostname }}
{{- if not $host }}
{{- fail "certManager: config.uri_template has no host; set certManager.dnsNames" }}
{{- end }}
{{- if regexMatch "^[0-9.]+$|:" $host }}
{{- $ips = list $host }}
{{- else }}
{{- $dns = list $host }}
{{- end }}
{{- end }}
{{- toYaml (dict "dnsNames" $dns "ipAddresses" $ips) }}
{{- end }}

{{/* 1 when the chart makes a Secret of its own (secret.yaml renders). */}}
{{- define "zgate-relay.chartSecret" -}}
{{- if and (not .Values.tls.existingSecret) (or (not .Values.certManager.enabled) (not .Values.certManager.clientCAFromIssuer) .Values.tls.crl) }}1{{ end }}
{{- end }}

{{/*
The relay_id of this release's pods (ipamApi, policyApi): one id, one
client certificate. ipamApi.relayId when ipamApi is on (policyApi then
shares it), else policyApi.relayId; default the release's full name.
*/}}
{{- define "zgate-relay.relayId" -}}
{{- $key := "ipamApi.relayId" }}
{{- $id := .Values.ipamApi.relayId }}
{{- if not .Values.ipamApi.enabled }}
{{- $key = "policyApi.relayId" }}
{{- $id = .Values.policyApi.relayId }}
{{- end }}
{{- $id = default (include "zgate-relay.fullname" .) $id }}
{{- if not (regexMatch "^[A-Za-z0-9._-]{1,63}$" $id) }}
{{- fail (printf "%s %q: 1-63 of A-Z a-z 0-9 . _ -" $key $id) }}
{{- end }}
{{- $id }}
{{- end }}

{{/*
The Secret holding the relay's client certificate for zgate-api: ipamApi's
(existingSecret or its cert-manager Certificate) when ipamApi is on, used
by policyApi too; else policyApi.existingSecret.
*/}}
{{- define "zgate-relay.apiClientSecretName" -}}
{{- if not .Values.ipamApi.enabled }}
{{- required "policyApi.existingSecret: the Secret with the relay's client certificate for zgate-api (tls.crt, tls.key; CN relay:<relayId>) and zgate-api's CA (ca.crt), or enable ipamApi and share its certificate" .Values.policyApi.existingSecret }}
{{- else if .Values.ipamApi.certManager.enabled }}
{{- printf "%s-api-client" (include "zgate-relay.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "ipamApi.existingSecret: the Secret with the relay's client certificate for zgate-api (tls.crt, tls.key; CN relay:<relayId>) and zgate-api's CA (ca.crt), or ipamApi.certManager.enabled" .Values.ipamApi.existingSecret }}
{{- end }}
{{- end }}

{{/* 1 when the deployment mounts the client certificate for zgate-api. */}}
{{- define "zgate-relay.apiClient" -}}
{{- if or .Values.ipamApi.enabled .Values.policyApi.enabled }}1{{ end }}
{{- end }}
