{{/* Names, labels, images and settings shared by every template. */}}

{{/* "<release>-sonalyze", or the release's name when it says sonalyze already; at most 43
characters, so that "<fullname>-<component>" stays a valid name (a StatefulSet's at most 52). */}}
{{- define "sonalyze.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 43 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 43 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A component's objects' name; args: dict root, component. */}}
{{- define "sonalyze.componentName" -}}
{{- printf "%s-%s" (include "sonalyze.fullname" .root) .component -}}
{{- end -}}

{{/* Labels that select a component's pods; args: dict root, component. The simulation service
labels its worker Jobs the same way, with component "simulation-worker". */}}
{{- define "sonalyze.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every object's labels; args: dict root, component. */}}
{{- define "sonalyze.labels" -}}
{{ include "sonalyze.selectorLabels" . }}
app.kubernetes.io/part-of: sonalyze
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels every pod of the release carries (what the default-deny policy selects). */}}
{{- define "sonalyze.releaseLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A service's image reference; args: dict root, service. */}}
{{- define "sonalyze.image" -}}
{{- $values := index .root.Values.services .service -}}
{{- $repository := $values.image.repository | default (printf "%s/sonalyze-%s" .root.Values.image.registry .service) -}}
{{- $tag := $values.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/* A service's URL inside the cluster; args: dict root, component (the service). */}}
{{- define "sonalyze.url" -}}
{{- printf "http://%s:%v" (include "sonalyze.componentName" .) (index .root.Values.services .component).port -}}
{{- end -}}

{{/* Whether the release runs its own Postgres ("true" or ""). */}}
{{- define "sonalyze.inClusterPostgres" -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) }}true{{ end -}}
{{- end -}}

{{/* The Secrets the chart reads its credentials from. */}}
{{- define "sonalyze.internalTokenSecret" -}}
{{- .Values.auth.internalTokenSecret | default (printf "%s-internal" (include "sonalyze.fullname" .)) -}}
{{- end -}}
{{- define "sonalyze.deviceTokenSecret" -}}
{{- .Values.auth.deviceTokenSecret | default (printf "%s-device-tokens" (include "sonalyze.fullname" .)) -}}
{{- end -}}
{{- define "sonalyze.databaseSecret" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "sonalyze.fullname" .)) -}}
{{- end -}}
{{- define "sonalyze.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}url{{ end -}}
{{- end -}}

{{/* A generated secret value, kept across upgrades: the value already in the cluster's Secret,
else a fresh random one; args: dict root, secret, key. */}}
{{- define "sonalyze.keptSecret" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 40 -}}
{{- end -}}
{{- end -}}

{{/* The database URL as an env var; storage and the migrations read it. */}}
{{- define "sonalyze.databaseUrlEnv" -}}
- name: SONALYZE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "sonalyze.databaseSecret" . }}
      key: {{ include "sonalyze.databaseSecretKey" . }}
{{- end -}}

{{/* The hardened securityContext of every Sonalyze pod and container. */}}
{{- define "sonalyze.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "sonalyze.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The plain SONALYZE_* settings the chart gives a service, as a YAML map; a service's
`env` value overrides them; args: dict root, service. */}}
{{- define "sonalyze.settings" -}}
{{- $root := .root -}}
{{- $values := index $root.Values.services .service -}}
SONALYZE_HOST: 0.0.0.0
SONALYZE_PORT: {{ $values.port | int64 | quote }}
SONALYZE_LOG_FORMAT: json
SONALYZE_LOG_LEVEL: {{ $root.Values.logLevel | quote }}
{{- /* Readiness fails this long before shutdown, so traffic moves away first. */}}
SONALYZE_DRAIN_DELAY_S: "5"
SONALYZE_SHUTDOWN_TIMEOUT_S: {{ sub (int64 $values.terminationGracePeriodSeconds) 10 | quote }}
{{- if ne .service "storage" }}
SONALYZE_STORAGE_URL: {{ include "sonalyze.url" (dict "root" $root "component" "storage") | quote }}
{{- end }}
{{- if eq .service "gateway" }}
{{- range $peer := list "lobby" "measurement" "simulation" }}
SONALYZE_{{ upper $peer }}_URL: {{ include "sonalyze.url" (dict "root" $root "component" $peer) | quote }}
{{- end }}
SONALYZE_ALLOWED_ORIGINS: {{ $root.Values.gateway.allowedOrigins | toJson | quote }}
{{- /* The names the Ingress serves the app under: its pages are the gateway's own. */}}
{{- $hosts := list }}
{{- with $root.Values.ingress.host }}{{ $hosts = append $hosts . }}{{ end }}
{{- range $root.Values.ingress.tls }}{{ range .hosts }}{{ $hosts = append $hosts . }}{{ end }}{{ end }}
SONALYZE_APP_HOSTS: {{ $hosts | uniq | toJson | quote }}
{{- /* Behind the Ingress, its controller forwards the phones' addresses. */}}
SONALYZE_TRUSTED_PROXIES: {{ ternary $root.Values.gateway.trustedProxies (list) $root.Values.ingress.enabled | toJson | quote }}
{{- else if eq .service "lobby" }}
SONALYZE_MEASUREMENT_URL: {{ include "sonalyze.url" (dict "root" $root "component" "measurement") | quote }}
{{- else if eq .service "measurement" }}
SONALYZE_LOBBY_URL: {{ include "sonalyze.url" (dict "root" $root "component" "lobby") | quote }}
{{- else if eq .service "simulation" }}
{{- $worker := $root.Values.simulation.worker }}
SONALYZE_RUNNER: kubernetes
SONALYZE_KUBE_IMAGE: {{ include "sonalyze.image" (dict "root" $root "service" "simulation") | quote }}
SONALYZE_KUBE_RELEASE: {{ $root.Release.Name | quote }}
SONALYZE_KUBE_TOKEN_SECRET: {{ include "sonalyze.internalTokenSecret" $root | quote }}
SONALYZE_KUBE_CPU: {{ $worker.cpu | quote }}
SONALYZE_KUBE_MEMORY: {{ $worker.memory | quote }}
SONALYZE_MAX_ATTEMPTS: {{ $worker.maxAttempts | int64 | quote }}
SONALYZE_JOB_DEADLINE_S: {{ $worker.deadlineSeconds | int64 | quote }}
SONALYZE_KUBE_TTL_S: {{ $worker.ttlSecondsAfterFinished | int64 | quote }}
SONALYZE_KUBE_IMAGE_PULL_SECRETS: {{ $root.Values.imagePullSecrets | toJson | quote }}
SONALYZE_KUBE_IMAGE_PULL_POLICY: {{ $root.Values.image.pullPolicy | quote }}
{{- end }}
{{- end -}}

{{/* A service's settings from Secrets, as env entries; args: dict root, service. */}}
{{- define "sonalyze.secretEnv" -}}
- name: SONALYZE_INTERNAL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "sonalyze.internalTokenSecret" .root }}
      key: token
{{- if eq .service "gateway" }}
- name: SONALYZE_DEVICE_TOKEN_SECRETS
  valueFrom:
    secretKeyRef:
      name: {{ include "sonalyze.deviceTokenSecret" .root }}
      key: secrets
{{- else if eq .service "storage" }}
{{ include "sonalyze.databaseUrlEnv" .root }}
{{- end }}
{{- end -}}

{{/* A setting's value as the service reads it: a whole number stays whole (Helm reads numbers
from values files as floats, which print as 1e+06). */}}
{{- define "sonalyze.settingValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}
{{- int64 . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}
